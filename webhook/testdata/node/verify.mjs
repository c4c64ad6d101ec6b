// Verifies recorded webhook deliveries with the standardwebhooks package:
// node verify.mjs FILE, where FILE holds {"secret": "whsec_…", "deliveries":
// [{"headers": {"webhook-id": …}, "body": "…"}]}. It prints one line per
// delivery and "verified N of N"; it exits 1 if any fails, or if a copy
// with a changed body is accepted.
import { readFileSync } from "node:fs";
import { Webhook } from "standardwebhooks";

const { secret, deliveries } = JSON.parse(readFileSync(process.argv[2], "utf8"));
const wh = new Webhook(secret);
let ok = 0;
for (const d of deliveries) {
  try {
    const event = wh.verify(d.body, d.headers);
    console.log(`ok ${d.headers["webhook-id"]} ${event.type} sequence ${event.data.sequence}`);
    ok++;
  } catch (e) {
    console.log(`FAIL ${d.headers["webhook-id"]}: ${e.message}`);
  }
  try {
    wh.verify(d.body + " ", d.headers);
    console.log(`FAIL ${d.headers["webhook-id"]}: a changed body was accepted`);
    ok--;
  } catch {
    // refused, as it must be
  }
}
console.log(`verified ${ok} of ${deliveries.length}`);
process.exit(ok === deliveries.length && ok > 0 ? 0 : 1);
