// Calls to the sidecar's page API; the session cookie travels with every same-origin request.

/** GET JSON; throws an Error carrying `.code` and `.status` on failure. */
export async function getJson(path) {
  const res = await fetch(path, { headers: { Accept: "application/json" } });
  return await unwrap(res);
}

/** POST a JSON body; throws an Error carrying `.code`, `.status` and `.data` on failure. */
export async function postJson(path, body = {}) {
  const res = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify(body),
  });
  return await unwrap(res);
}

async function unwrap(res) {
  let body = null;
  try {
    body = await res.json();
  } catch {
    // a non-JSON reply is reported below by status
  }
  if (res.ok) return body;
  const e = body?.error ?? {
    code: `HTTP_${res.status}`,
    message: `${res.status} ${res.statusText}`,
  };
  const err = new Error(e.message);
  err.code = e.code;
  err.status = res.status;
  err.data = e.data;
  throw err;
}
