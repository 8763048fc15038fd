-- A client's refresh-token chains at /oauth2/token (grant_type=refresh_token, client_secret_basic
-- in BRAMA_BASIC): one grant per connection (from BRAMA_TOKENS_FILE), always its newest token.
dofile("bench/lua/report.lua")
local all = {}
for line in io.lines(os.getenv("BRAMA_TOKENS_FILE")) do all[#all + 1] = line end
local basic = "Basic " .. os.getenv("BRAMA_BASIC")
pool = all

function request()
  local token = table.remove(pool)
  return wrk.format("POST", "/oauth2/token",
    { ["content-type"] = "application/x-www-form-urlencoded", ["authorization"] = basic },
    "grant_type=refresh_token&refresh_token=" .. token)
end

function response(status, headers, body)
  local token = body:match('"refresh_token":"([^"]+)"')
  if token then pool[#pool + 1] = token end
end
