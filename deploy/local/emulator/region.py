"""Starts one emulated region: moto's server (same arguments as `moto_server`:
`-H HOST -p PORT`) with the REST API execution layer in front of it, in one process.

    .venv/bin/python deploy/local/emulator/region.py -H 127.0.0.1 -p 5001

With a peer, the region replicates to and from it (S3 Replication rules, DynamoDB
global tables; see `emulator/replication.py`):

    region.py -H 127.0.0.1 -p 5001 --region us-east-1 \\
        --peer http://127.0.0.1:5002 --peer-region ap-northeast-1 [--replication-lag 1s]

Each flag can come from the environment instead: EMULATOR_REGION, EMULATOR_PEER_URL,
EMULATOR_PEER_REGION, EMULATOR_REPLICATION_LAG, EMULATOR_REPLICATION_SEND_TIMEOUT (a
flag wins over its variable).
"""

import argparse
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from moto.moto_server.werkzeug_app import (  # noqa: E402
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import run_simple  # noqa: E402

from emulator import bucket_replication, gateway, global_tables, iam, replication  # noqa: E402


def main(argv=None):
    env = os.environ.get
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=int(env("MOTO_PORT", 5000)))
    parser.add_argument("--region", default=env("EMULATOR_REGION"),
                        help="the AWS region this process is (needed with --peer)")
    parser.add_argument("--peer", default=env("EMULATOR_PEER_URL"),
                        help="the peer region's endpoint, on loopback (http://127.0.0.1:PORT)")
    parser.add_argument("--peer-region", default=env("EMULATOR_PEER_REGION"),
                        help="the peer's AWS region")
    parser.add_argument("--replication-lag", default=env("EMULATOR_REPLICATION_LAG", "1s"),
                        type=replication.parse_duration,
                        help="how long a change waits before it is sent to the peer (default 1s)")
    parser.add_argument("--replication-send-timeout", default=env("EMULATOR_REPLICATION_SEND_TIMEOUT", "5s"),
                        type=replication.parse_duration,
                        help="how long a send to a peer that does not answer (suspended) waits before "
                             "it is given up and tried again (default 5s)")
    args = parser.parse_args(argv)
    os.environ.setdefault("MOTO_PORT", str(args.port))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
    try:
        link = replication.configure(args.region, args.peer, args.peer_region, args.replication_lag,
                                     args.replication_send_timeout)
    except ValueError as e:
        parser.error(str(e))
    global_tables.install(link)
    bucket_replication.install(link)
    link.start()
    if link.active:
        replication.log(f"{link.region} replicates with {link.peer_region} at {link.peer_url}, "
                        f"lag {link.lag:g} s")

    moto_app = DomainDispatcherApplication(create_backend_app)
    app = iam.DenyLayer(
        replication.ControlLayer(gateway.ExecutionLayer(moto_app), on_reset=[global_tables.reset]))
    run_simple(args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
