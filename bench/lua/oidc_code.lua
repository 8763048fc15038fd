-- The code flow's two steps on the server: /oauth2/authorize (a code in the 303's Location), then
-- the code's exchange at /oauth2/token (client_secret_basic: BRAMA_BASIC is base64 id:secret).
-- Codes wait in a queue; a connection exchanges one if there is one, else asks for one, so about
-- half the requests are exchanges. RESULT also says how many of each there were, so that
-- bench/run.py can take the authorize scenario's CPU away and keep the exchange's.
dofile("bench/lua/oidc_authorize.lua")
local redirect = "https%3A%2F%2Frp.example.org%2Fcb"
local basic = "Basic " .. os.getenv("BRAMA_BASIC")
local codes = {}
exchanges, authorizes = 0, 0
local threads = {}

function setup(thread)
  threads[#threads + 1] = thread
end

function request()
  local code = table.remove(codes)
  if code then
    exchanges = exchanges + 1
    return wrk.format("POST", "/oauth2/token",
      { ["content-type"] = "application/x-www-form-urlencoded", ["authorization"] = basic },
      "grant_type=authorization_code&redirect_uri=" .. redirect .. "&code=" .. code)
  end
  authorizes = authorizes + 1
  return wrk.format("GET", authorize_path, { ["cookie"] = sso_cookie })
end

function response(status, headers, body)
  local location = headers["Location"] or headers["location"]
  if location then
    local code = location:match("[?&]code=([^&]+)")
    if code then codes[#codes + 1] = code end
  end
end

local report = done
function done(summary, latency, requests)
  local e, a = 0, 0
  for _, t in ipairs(threads) do
    e = e + (t:get("exchanges") or 0)
    a = a + (t:get("authorizes") or 0)
  end
  io.write(string.format('COUNTS {"exchanges":%d,"authorizes":%d}\n', e, a))
  report(summary, latency, requests)
end
