-- POST /api/auth/login for the bench user: argon2id verify, session insert, JWT signing.
dofile("bench/lua/report.lua")
wrk.method = "POST"
wrk.headers["content-type"] = "application/json"
wrk.body = '{"username":"bench","password":"Zx8!quokka"}'
