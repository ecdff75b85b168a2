-- POST /api/v1/objects/offer/records: an offer with one line. Env: BENCH_CUSTOMER.
dofile(os.getenv("BENCH_LUA") .. "/common.lua")

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = string.format(
   '{"customer":"%s","title":"Bench offer","lines":[{"description":"Consulting","quantity":"2","unit_price":"10.00"}]}',
   os.getenv("BENCH_CUSTOMER") or "")
