-- GET /api/auth/me with a header token (BRAMA_TOKEN).
dofile("bench/lua/report.lua")
local token = os.getenv("BRAMA_TOKEN")
wrk.method = "GET"
wrk.headers["x-access-token"] = token
