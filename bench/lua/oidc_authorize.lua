-- OpenID Connect (SPEC §14): /oauth2/authorize from a signed-in browser (its SSO cookie in
-- BRAMA_SSO) for a first-party client (BRAMA_CLIENT): each answer is a 303 with a new code.
-- With BRAMA_CODES_FILE, each code is also written there, a line each, for oidc_exchange.lua.
dofile("bench/lua/report.lua")
local redirect = "https%3A%2F%2Frp.example.org%2Fcb"
authorize_path = "/oauth2/authorize?client_id=" .. os.getenv("BRAMA_CLIENT") .. "&redirect_uri=" .. redirect
  .. "&response_type=code&scope=openid%20email"
sso_cookie = "brama_sso=" .. os.getenv("BRAMA_SSO")

function request()
  return wrk.format("GET", authorize_path, { ["cookie"] = sso_cookie })
end

local codes_file = os.getenv("BRAMA_CODES_FILE")
if codes_file then
  local out = io.open(codes_file, "a")
  function response(status, headers, body)
    local code = (headers["Location"] or headers["location"] or ""):match("[?&]code=([^&]+)")
    if code then
      out:write(code, "\n")
      out:flush()
    end
  end
end
