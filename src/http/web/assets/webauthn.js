// Passkeys in the browser (SPEC §13): brama's options arrive as JSON with binary values in
// base64url; navigator.credentials wants ArrayBuffers, and its answer goes back as JSON in the
// shape of PublicKeyCredential.toJSON(). Written out by hand because older phones' browsers lack
// parseCreationOptionsFromJSON and toJSON.

const toBytes = (text) => {
  const b64 = text.replace(/-/g, "+").replace(/_/g, "/");
  const bin = atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0)).buffer;
};

const toText = (buffer) => {
  let bin = "";
  for (const b of new Uint8Array(buffer)) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
};

/** A credential as PublicKeyCredential.toJSON() writes it, with its `response` already JSON. */
const answer = (cred, response) => ({
  id: cred.id,
  rawId: toText(cred.rawId),
  type: cred.type,
  response,
  clientExtensionResults: cred.getClientExtensionResults(),
});

const withIds = (list) => (list ?? []).map((c) => ({ ...c, id: toBytes(c.id) }));

/** Whether this browser can use passkeys at all. */
export const passkeysAvailable = () => typeof window.PublicKeyCredential === "function" && Boolean(navigator.credentials);

/** navigator.credentials.create() for brama's `{publicKey}`; the answer as JSON. */
export async function createPasskey(options) {
  const pk = options.publicKey;
  const publicKey = {
    ...pk,
    challenge: toBytes(pk.challenge),
    user: { ...pk.user, id: toBytes(pk.user.id) },
    excludeCredentials: withIds(pk.excludeCredentials),
  };
  const cred = await navigator.credentials.create({ publicKey });
  const r = cred.response;
  return answer(cred, {
    attestationObject: toText(r.attestationObject),
    clientDataJSON: toText(r.clientDataJSON),
    transports: r.getTransports ? r.getTransports() : [],
  });
}

/** navigator.credentials.get() for brama's `{publicKey}`; the answer as JSON. */
export async function getPasskey(options) {
  const pk = options.publicKey;
  const publicKey = { ...pk, challenge: toBytes(pk.challenge), allowCredentials: withIds(pk.allowCredentials) };
  const cred = await navigator.credentials.get({ publicKey });
  const r = cred.response;
  return answer(cred, {
    authenticatorData: toText(r.authenticatorData),
    clientDataJSON: toText(r.clientDataJSON),
    signature: toText(r.signature),
    userHandle: r.userHandle ? toText(r.userHandle) : null,
  });
}
