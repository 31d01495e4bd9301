// Verifies webhook messages with the Standard Webhooks reference library, not Herald's
// code: reads [{secret, headers, body}] as JSON on stdin and prints, for each, "ok" or
// the verifier's error.
import { Webhook } from "standardwebhooks";

let input = "";
for await (const chunk of process.stdin) input += chunk;
const verdicts = JSON.parse(input).map(({ secret, headers, body }) => {
  try {
    new Webhook(secret).verify(body, headers);
    return "ok";
  } catch (error) {
    return String(error.message || error);
  }
});
process.stdout.write(JSON.stringify(verdicts));
