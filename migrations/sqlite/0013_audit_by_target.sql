-- The audit trail of one member or account (SPEC §12: the right of access answers every event
-- about the member) without scanning the organization's whole log.
CREATE INDEX audit_events_target ON audit_events (target, created_at);
