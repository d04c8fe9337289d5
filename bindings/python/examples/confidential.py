"""The flows of MSAL.NET's mTLS PoP guides, against the emulator: a confidential client's mTLS
PoP token (vanilla), calling the resource with the binding certificate, and two-leg FIC.

    build/mtlspop emulator --require-pop > emu.json &
    export $(python3 -c 'import json;print(" ".join(f"{k}={v}" for k,v in json.load(open("emu.json"))["env"].items()))')
    python examples/confidential.py emu.json
"""

import json
import sys

import mtlspop

info = json.load(open(sys.argv[1]))
app, scope = info["app"], info["urls"]["resource_id"] + "/.default"

# 1. Vanilla: the app certificate authenticates at the TLS layer; the token is bound to it.
with mtlspop.ConfidentialClient(app["authority"], app["client_id"], certificate=(app["cert_file"], app["key_file"]),
                                mtls_endpoint=app["mtls_endpoint"], mtls_pop=True) as cc:
    result = cc.acquire_token_for_client(scope)
    print("vanilla: ", result.token_type, "bound to", result.binding_certificate_thumbprint)
    # 2. Call the resource over mTLS with the binding certificate.
    print("resource:", cc.call(result, "GET", info["urls"]["resource"]).status)

# 3. Two-leg FIC: leg 1 this host's managed identity (bound), leg 2 the app presenting it.
with mtlspop.ConfidentialClient(app["authority"], app["client_id"], federated=mtlspop.FromManagedIdentity(),
                                mtls_endpoint=app["mtls_endpoint"], mtls_pop=True) as cc:
    result = cc.acquire_token_for_client(scope)
    print("two-leg: ", result.token_type, "bound to", result.binding_certificate_thumbprint)
    print("resource:", cc.call(result, "GET", info["urls"]["resource"]).status)
