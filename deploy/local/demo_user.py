#!/usr/bin/env python3
"""Gives the demo's Cognito user a temporary password a person can type.

For the local demo only. On AWS, AdminCreateUser mails the user a temporary password;
the emulator mails nothing, so the demo sets one with AdminSetUserPassword
(Permanent=false: at the first sign-in the page asks for a new one, as it would on
AWS) and prints it.

    demo_user.py --ui-config target/emulator/uiConfig.json --user ops [--password P]

Reads the pool id, its region and the emulator's endpoint from uiConfig.json (as
`failover-monitor provision ui-config` writes it); without --password, makes one that
meets Cognito's default policy. Prints the password. Talks to that endpoint only.
"""
import argparse
import json
import secrets
import sys

import boto3
from botocore.config import Config


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ui-config", required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", help="default: a new random one")
    args = parser.parse_args()
    with open(args.ui_config) as f:
        ui = json.load(f)
    endpoint = ui.get("cognitoEndpoint")
    if not endpoint:
        sys.exit("uiConfig.json has no cognitoEndpoint: this is for the local emulator only")
    # Upper and lower case, a digit and a symbol: Cognito's default password policy.
    password = args.password or f"Demo-{secrets.token_hex(4)}-7x"
    idp = boto3.client("cognito-idp", region_name=ui["uiRegion"], endpoint_url=endpoint,
                       aws_access_key_id="test", aws_secret_access_key="test",
                       config=Config(retries={"max_attempts": 2}))
    idp.admin_set_user_password(UserPoolId=ui["userPoolId"], Username=args.user,
                                Password=password, Permanent=False)
    print(password)


if __name__ == "__main__":
    main()
