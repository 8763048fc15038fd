-- Signing keys of two kinds (SPEC §14): Ed25519 (`EdDSA`: access tokens, and ID tokens of
-- clients that ask for it) and RSA-2048 (`RS256`: ID tokens, which OpenID Connect Core §15.1
-- makes mandatory). Keys from before are Ed25519; the first start after this adds an RSA key.
ALTER TABLE signing_keys ADD COLUMN alg TEXT NOT NULL DEFAULT 'EdDSA';
