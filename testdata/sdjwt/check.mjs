// Reads {"root": {"_sd": [...], "_sd_alg": "sha-256"}, "disclosures": ["..."]}
// on stdin and writes what the @sd-jwt implementation makes of it:
// {"digests": [digest of each disclosure], "claims": the root unpacked with
// the disclosures}. Used by disclosure/sdjwt_node_test.go.
import { digest } from '@sd-jwt/crypto-nodejs';
import { unpack } from '@sd-jwt/decode';
import { Disclosure } from '@sd-jwt/utils';

let input = '';
for await (const chunk of process.stdin) input += chunk;
const { root, disclosures } = JSON.parse(input);
const hasher = { hasher: digest, alg: root._sd_alg };
const parsed = [];
const digests = [];
for (const enc of disclosures) {
  const d = await Disclosure.fromEncode(enc, hasher);
  parsed.push(d);
  digests.push(await d.digest(hasher));
}
const { unpackedObj } = await unpack(root, parsed, digest);
process.stdout.write(JSON.stringify({ digests, claims: unpackedObj }));
