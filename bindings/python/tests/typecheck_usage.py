"""Type-checked, never run: the public API as a typed caller uses it. ci/python.sh test runs
mypy --strict on this file and on the installed package (which ships py.typed)."""

from typing import List, Optional

import mtlspop


def sync_use() -> None:
    identity = mtlspop.UserAssigned(client_id="00000000-0000-0000-0000-000000000000")
    key = mtlspop.TPMKey(device="/dev/tpmrm0", attest=True)
    with mtlspop.ManagedIdentityClient(identity, mtls_pop=True, key=key, timeout=5) as client:
        result: mtlspop.AuthenticationResult = client.acquire_token("api://x", force_refresh=True)
        header: str = result.authorization_header()
        pem: Optional[str] = result.binding_certificate_pem
        source: mtlspop.TokenSource = result.token_source
        response: mtlspop.Response = client.call(
            result, "GET", "https://x", headers={"a": "b", "c": ["d"]}, body=b"x")
        status: int = response.status
        claims: mtlspop.Claims = mtlspop.verify(
            header, pem, audiences=["api://x"], jwks_url="https://x")
        subject: str = claims.subject
        del status, subject, source


async def async_use(client: mtlspop.ManagedIdentityClient) -> List[str]:
    try:
        result = await client.acquire_token_async("api://x", mtls_pop=False, timeout=1.5)
    except mtlspop.RequestTimeoutError as e:
        return [e.code, e.correlation_id, str(e.status)]
    except mtlspop.MtlsPopError as e:
        return [e.code]
    return [result.token_type]
