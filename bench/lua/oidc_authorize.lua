-- OpenID Connect (SPEC §14): /oauth2/authorize from a signed-in browser (its SSO cookie in
-- BRAMA_SSO) for a first-party client (BRAMA_CLIENT): each answer is a 303 with a new code.
dofile("bench/lua/report.lua")
local redirect = "https%3A%2F%2Frp.example.org%2Fcb"
authorize_path = "/oauth2/authorize?client_id=" .. os.getenv("BRAMA_CLIENT") .. "&redirect_uri=" .. redirect
  .. "&response_type=code&scope=openid%20email"
sso_cookie = "brama_sso=" .. os.getenv("BRAMA_SSO")

function request()
  return wrk.format("GET", authorize_path, { ["cookie"] = sso_cookie })
end
