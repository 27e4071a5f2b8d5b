/**
 * The names a configuration holds (a target's, a host's), checked without the configuration's
 * schemas (config-schema.ts, valibot): `deliver` checks its `--target` and the customer's
 * domains with them, and a start without `--config` does not load the schemas (about 10 ms).
 */
import { isIP } from 'node:net';

/**
 * What a target may be called: a letter or digit, then up to 63 of letters, digits, ".", "_" and
 * "-" (it names a directory of the mail directory and a key prefix in S3).
 */
export const TARGET_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

const HOST_LABEL = /^[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?$/;

export function isHost(value: string): boolean {
  if (isIP(value) !== 0) return true;
  if (value.length > 253) return false;
  const name = value.endsWith('.') ? value.slice(0, -1) : value;
  return name.length > 0 && name.split('.').every((label) => HOST_LABEL.test(label));
}
