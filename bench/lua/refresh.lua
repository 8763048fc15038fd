-- Refresh chains: each connection holds its own refresh token (one per account, from
-- BRAMA_TOKENS_FILE) and always presents the newest one, as a client that rotates would.
-- A connection sends its next request only after its answer, so the pool never runs dry (the
-- file holds one token more than connections: wrk calls request() once to check the script).
dofile("bench/lua/report.lua")
local tokens_file = os.getenv("BRAMA_TOKENS_FILE")
local all = {}
for line in io.lines(tokens_file) do all[#all + 1] = line end
local next_thread = 0

function setup(thread)
  thread:set("id", next_thread)
  next_thread = next_thread + 1
end

function init(args)
  -- Threads share the file round-robin; each takes every n-th token.
  local threads = tonumber(os.getenv("BRAMA_THREADS") or "1")
  pool = {}
  for i = id + 1, #all, threads do pool[#pool + 1] = all[i] end
end

function request()
  local token = table.remove(pool)
  return wrk.format("POST", "/api/auth/refreshtoken", { ["content-type"] = "application/json" },
    '{"refreshToken":"' .. token .. '"}')
end

function response(status, headers, body)
  local token = body:match('"refreshToken":"([^"]+)"')
  if token then pool[#pool + 1] = token end
end
