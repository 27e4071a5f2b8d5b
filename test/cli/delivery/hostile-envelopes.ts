/**
 * Stored envelopes that must never reach the wire (issue 17 item 3), shared by the mail
 * directory and the S3 tests: each turns a good envelope into a bad one, and names the reason
 * `deliver` must give when it moves the message to failed/.
 */

export interface HostileCase {
  readonly name: string;
  /** The envelope as stored, from the good one (a JSON object), or the file's text itself. */
  readonly make: (good: Record<string, unknown>) => unknown;
  /** What the reason says. */
  readonly reason: RegExp;
}

export const HOSTILE_ENVELOPES: readonly HostileCase[] = [
  {
    name: 'CR LF in a recipient (a second transaction injected)',
    make: (e) => ({
      ...e,
      rcptTo: [
        'user@customer.test>\r\nDATA\r\n.\r\nMAIL FROM:<x@evil.test>\r\nRCPT TO:<victim@elsewhere.test',
      ],
    }),
    reason: /rcptTo\[0\] .* contains CR/,
  },
  {
    name: 'LF in the sender',
    make: (e) => ({ ...e, mailFrom: 'a@origin.test>\nRCPT TO:<victim@elsewhere.test' }),
    reason: /mailFrom .* contains LF/,
  },
  {
    name: '"<" and ">" inside a recipient',
    make: (e) => ({ ...e, rcptTo: ['user@customer.test> <victim@elsewhere.test'] }),
    reason: /rcptTo\[0\] .* contains "<" or ">"/,
  },
  {
    name: 'NUL in a recipient',
    make: (e) => ({ ...e, rcptTo: ['user\u0000@customer.test'] }),
    reason: /rcptTo\[0\] .* contains NUL/,
  },
  {
    name: 'no recipient at all',
    make: (e) => ({ ...e, rcptTo: [] }),
    reason: /rcptTo is empty/,
  },
  {
    name: 'recipients that are not an array',
    make: (e) => ({ ...e, rcptTo: 'user@customer.test' }),
    reason: /rcptTo must be an array/,
  },
  {
    name: 'a recipient that is not a string',
    make: (e) => ({ ...e, rcptTo: ['user@customer.test', { address: 'x@customer.test' }] }),
    reason: /rcptTo\[1\] must be a string/,
  },
  {
    name: 'a sender that is not a string',
    make: (e) => ({ ...e, mailFrom: 42 }),
    reason: /mailFrom must be a string/,
  },
  {
    name: 'a local part over 64 octets',
    make: (e) => ({ ...e, rcptTo: [`${'x'.repeat(65)}@customer.test`] }),
    reason: /local part longer than 64 octets/,
  },
  {
    name: 'a BODY that is not 7BIT or 8BITMIME',
    make: (e) => ({ ...e, body: '8BITMIME\r\nRSET' }),
    reason: /body must be "7BIT" or "8BITMIME"/,
  },
  {
    name: 'a size that is not a number',
    make: (e) => ({ ...e, bytes: '100' }),
    reason: /bytes must be a number/,
  },
  { name: 'not JSON', make: () => '{"mailFrom": "a@b.test", ', reason: /not JSON/ },
];
