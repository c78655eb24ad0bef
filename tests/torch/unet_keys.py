"""Prints the seed module's state_dict as JSON {name: shape} for the config given as JSON in argv[1]."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import unet_ref  # noqa: E402

model = unet_ref.unet_from_config(json.loads(sys.argv[1]))
print(json.dumps({k: list(v.shape) for k, v in model.state_dict().items()}))
