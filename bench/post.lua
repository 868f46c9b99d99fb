-- wrk script: the seed's DescribeImages request, unsigned.
wrk.method = "POST"
wrk.body = os.getenv("BODY") or "{}"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-ZC-Action"] = "DescribeImages"
