// Acquires one managed-identity token with msal-node, unmodified, and prints the result as JSON.
// The environment announces the source, as on a real host; MTLSPOP_INTEROP_* say what to ask for.
//   MTLSPOP_INTEROP_NODE_MODULES  directory holding node_modules/@azure/msal-node
//   MTLSPOP_INTEROP_RESOURCE      the resource
//   MTLSPOP_INTEROP_ID            "" (system-assigned) or client_id=…, resource_id=…, object_id=…
"use strict";
const path = require("node:path");
const { createRequire } = require("node:module");

const req = createRequire(path.join(process.env.MTLSPOP_INTEROP_NODE_MODULES, "package.json"));
const msal = req("@azure/msal-node");

// app is kept outside main so that a failure still reports which source msal-node detected.
let app;

async function main() {
  const params = {};
  const id = process.env.MTLSPOP_INTEROP_ID || "";
  if (id) {
    const [kind, value] = [id.slice(0, id.indexOf("=")), id.slice(id.indexOf("=") + 1)];
    params[{ client_id: "userAssignedClientId", resource_id: "userAssignedResourceId", object_id: "userAssignedObjectId" }[kind]] = value;
  }
  app = new msal.ManagedIdentityApplication({ managedIdentityIdParams: params });
  const res = await app.acquireToken({ resource: process.env.MTLSPOP_INTEROP_RESOURCE });
  process.stdout.write(JSON.stringify({
    source: app.getManagedIdentitySource(),
    access_token: res.accessToken,
    token_type: res.tokenType,
    expires_on: Math.floor(res.expiresOn.getTime() / 1000),
  }) + "\n");
}

main().catch((e) => {
  let source;
  try {
    source = app && app.getManagedIdentitySource();
  } catch (_) {
    // No source to report: the failure came before detection.
  }
  process.stdout.write(JSON.stringify({ source, error: e.errorCode || e.name, error_description: String(e.errorMessage || e.message) }) + "\n");
  process.exit(1);
});
