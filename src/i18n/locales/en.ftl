# brama messages in English (Fluent). Every catalog has the same keys; a test checks it.

registered = User was registered successfully!
username-taken = Failed! Username is already in use!
email-taken = Failed! Email is already in use!
phone-taken = Failed! Phone is already in use!
invalid-credentials = Invalid username or password
authorized = Authorized
token-expired = Unauthorized! Access Token was expired!
unauthorized = Unauthorized!
no-token = No token provided!
refresh-unknown = This refresh token doesn't exist in database
refresh-expired = Refresh token was expired. Please make a new signin request
refresh-reused = Refresh token was already used; the session has been ended. Please sign in again
refresh-rotated = Refresh token was just rotated; use the newest one
logged-out = You've been signed out!
logged-out-all = You've been signed out of every session!
session-revoked = Session was ended
password-changed = Password was changed successfully!
wrong-password = Current password is wrong
last-owner = You are the organization's last owner: make another account an owner first
invalid-code = Invalid or already used code
mfa-token-invalid = The sign-in step expired or was already used: sign in again
mfa-required = Second factor required
mfa-reset = The account's second factors were removed and its sessions ended
mfa-enrollment-required = Your role requires a second factor: set one up first
totp-enabled = Two-step verification with an authenticator app is already on: turn it off first
totp-not-started = Start setting up the authenticator app first
totp-disabled = Two-step verification was turned off
credential-malformed = The passkey's answer is malformed
passkey-invalid = The passkey was not accepted
passkey-rejected = The passkey could not be registered; start again
passkey-exists = This passkey is registered already
no-passkey = The account has no passkey
passkey-removed = The passkey was removed
reauthentication-required = Sign in again to change your passkeys (a sign-in of the last 15 minutes)
account-deleted = Your account was deleted
validation-failed = Validation failed
rate-limited = Too many requests, try again later
database-unavailable = The database is not answering, try again in a moment
storage-full = The server cannot save anything right now (its storage is full), try again later
busy = The server is busy, try again in a moment
csrf-missing = CSRF token missing: send the sessionId header
csrf-invalid = CSRF token does not match
cross-site = Cross-site request refused
not-found = Not found.
method-not-allowed = Method not allowed
forbidden = Forbidden
invalid-json = The request body is not valid JSON
body-too-large = The request body is too large
unsupported-media-type = Send the body as application/json
internal = Something went wrong on our side, try again later
reset-requested = If an account uses this address, a link to reset its password is on its way
reset-done = Password was reset successfully! Please sign in
require-moderator = Require Moderator Role!
require-admin = Require Admin Role!
require-owner = Require Owner Role!
cannot-change-self = You cannot change your own role or status
invalid-query = The query parameters are not valid
member-not-found = Member not found.
version-conflict = The member was changed in the meantime; reload it and try again
member-deleted = Member was deleted successfully!
import-failed = Nothing was imported: fix the rows listed in errors
json-object-expected = The request body must be a JSON object
nul-character = must not contain the NUL character
reset-invalid = This password reset link is invalid, used or expired
problem-taken = is already in use
problem-type = has the wrong type; send text
problem-unknown = is not a known column
problem-required = is required
problem-length = must be { $min } to { $max } characters long
problem-characters = contains characters that are not allowed
problem-format = has the wrong format
problem-password-classes = needs at least one upper-case letter, one lower-case letter, one digit and one symbol
problem-common-password = is too common; choose another
problem-message = { $field }: { $detail }
email-reset-subject = Reset your brama password
email-reset-body = Someone asked to reset the password of your account.

    To choose a new password, open this link within an hour:
    { $link }

    If it was not you, ignore this email; your password stays as it is.
activation-invalid = This activation link is invalid, used or expired
company-created = The account was created. An activation email was sent.
invalid-email-or-password = Invalid email or password
activation-resent = If a pending account uses this address, a new activation link is on its way
success = Done
email-activation-subject = Activate your brama account
email-activation-body = Your company account was created.

    To set your password and activate it, open this link within 48 hours:
    { $link }

    If you did not sign up, ignore this email.
email-change-requested = We sent a link to the new address: the address changes when you open it (within 24 hours)
email-changed = The email address was changed; your other sessions have ended
email-token-invalid = This email confirmation link is invalid, used or expired
email-email-change-subject = Confirm your new email address in brama
email-email-change-body = Someone asked to use this address for their brama account.

    To confirm it, open this link within 24 hours:
    { $link }

    If it was not you, ignore this email; nothing changes.
email-email-notice-subject = A change of your email address in brama
email-email-notice-body = Someone asked to change the email address of your brama account to another one.
    It changes only when the link sent to the new address is opened.

    If it was not you, sign in and change your password: { $link }
oidc-client-removed = The application was removed: it can no longer sign anyone in
