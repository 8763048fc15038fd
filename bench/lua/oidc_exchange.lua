-- The code exchange alone at /oauth2/token (client_secret_basic: BRAMA_BASIC is base64
-- id:secret): each code of BRAMA_CODES_FILE (made just before by oidc_authorize.lua, codes live
-- 60 s) is exchanged once. When they run out the thread stops, so the requests measured are
-- exchanges (and at most one /healthz per connection, sent as the thread stops).
dofile("bench/lua/report.lua")
local redirect = "https%3A%2F%2Frp.example.org%2Fcb"
local basic = "Basic " .. os.getenv("BRAMA_BASIC")
local codes = {}
for line in io.lines(os.getenv("BRAMA_CODES_FILE")) do codes[#codes + 1] = line end

function request()
  local code = table.remove(codes)
  if not code then
    wrk.thread:stop()
    return wrk.format("GET", "/healthz")
  end
  return wrk.format("POST", "/oauth2/token",
    { ["content-type"] = "application/x-www-form-urlencoded", ["authorization"] = basic },
    "grant_type=authorization_code&redirect_uri=" .. redirect .. "&code=" .. code)
end
