-- PESELs encrypted at rest (SPEC §12): `pesel` holds the ciphertext (`v1.<key id>.<…>`, see
-- src/crypto/datakey.rs) and `pesel_index` the blind index that keeps a PESEL unique within its
-- organization and finds a member by it. Rows written before this hold a clear PESEL and no
-- index until brama encrypts them at its next start (src/core/data_key.rs).
ALTER TABLE members ADD COLUMN pesel_index TEXT;
ALTER TABLE members DROP CONSTRAINT members_pesel_unique;
CREATE UNIQUE INDEX members_pesel_index ON members (organization_id, pesel_index);
