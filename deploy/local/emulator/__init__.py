"""One emulated AWS region: moto's server and, in the same process, an execution
layer for the API Gateway REST APIs provisioned into it (`gateway`), whose mapping
templates are rendered by `vtl`. Started by `region.py`; killing the process is the
region's outage, its APIs included."""
