"""Acquires one managed-identity token with MSAL Python, unmodified, and prints the result as JSON.

The environment announces the source, as on a real host; MTLSPOP_INTEROP_* say what to ask for:
  MTLSPOP_INTEROP_RESOURCE  the resource
  MTLSPOP_INTEROP_ID        "" (system-assigned) or client_id=..., resource_id=..., object_id=...
"""
import json
import os
import sys

import msal
import requests


def main():
    ident = os.environ.get("MTLSPOP_INTEROP_ID", "")
    if ident:
        kind, value = ident.split("=", 1)
        mi = msal.UserAssignedManagedIdentity(**{kind: value})
    else:
        mi = msal.SystemAssignedManagedIdentity()
    client = msal.ManagedIdentityClient(mi, http_client=requests.Session())
    try:
        result = client.acquire_token_for_client(resource=os.environ["MTLSPOP_INTEROP_RESOURCE"])
    except Exception as e:  # MSAL raises for refusals it detects itself (Arc fail-closed, ...)
        print(json.dumps({"error": type(e).__name__, "error_description": str(e)}))
        return 1
    if "access_token" not in result:
        print(json.dumps({"error": result.get("error"), "error_description": result.get("error_description")}))
        return 1
    print(json.dumps({
        "access_token": result["access_token"],
        "token_type": result.get("token_type"),
        "expires_in": result.get("expires_in"),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
