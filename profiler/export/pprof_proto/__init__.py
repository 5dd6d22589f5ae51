"""google/pprof's profile.proto and the Python code protoc generates from it.

profile_pb2.py is generated; do not edit it. See README in this directory
for where profile.proto comes from and the command that regenerates it.
"""
