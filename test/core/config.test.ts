import { describe, expect, it } from 'vitest';
import { parseConfigDocument, parseTarget } from '../../lambda/core/config';

const doc = (targets: unknown[], settings: unknown = {}) => ({ settings, targets });
const parseErr = (input: unknown) => {
  try {
    parseConfigDocument(input, 'my.json');
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error('expected a configuration error');
};

describe('configuration document', () => {
  it('applies the documented defaults', () => {
    const { settings, targets } = parseConfigDocument(
      doc([
        { name: 'etrn', host: 'relay.isp.example', command: 'ETRN example.com' },
        {
          name: 'odmr',
          host: 'odmr.isp.example',
          command: 'ATRN example.com',
          auth: { secretId: 'isp' },
        },
        { name: 'finger', host: '192.0.2.7', protocol: 'raw', command: 'customer' },
        { name: 'bare', host: '2001:db8::1' },
      ]),
      'my.json',
    );
    expect(settings).toEqual({ everyNthCycle: 0, concurrency: 10 });
    expect(targets.map((t) => t.port)).toEqual([25, 366, 79, 25]);
    expect(targets[0]).toMatchObject({
      protocol: 'smtp',
      ehlo: true,
      tls: 'opportunistic',
      tlsVerify: true,
      allowPlaintextAuth: false,
      enabled: true,
      commands: ['ETRN example.com'],
    });
    expect(targets[2]).toMatchObject({ ehlo: false, tls: 'none' });
    expect(targets[3]!.commands).toEqual([]);
  });

  it.each([
    [
      doc([{ name: 'a', host: 'h.test', command: 'ETRN a.test\r\nDATA' }]),
      'my.json: targets[0].command: must not contain CR, LF or NUL: each command is one line',
    ],
    [
      doc([{ name: 'a', host: 'h.test', command: ['ETRN a.test', 'ETRN b\0.test'] }]),
      'my.json: targets[0].command[1]: must not contain CR, LF or NUL: each command is one line',
    ],
    [
      doc([{ name: 'a', host: 'h.test', port: 70000 }]),
      'my.json: targets[0].port: must be at most 65535',
    ],
    [
      doc([
        { name: 'a', host: 'h.test' },
        { name: 'bad name!', host: 'h.test' },
      ]),
      'my.json: targets[1].name: must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$',
    ],
    [
      doc([{ name: 'a', host: 'not a host' }]),
      'my.json: targets[0].host: must be a host name, an IPv4 or an IPv6 address',
    ],
    [doc([{ name: 'a' }]), 'my.json: targets[0].host: is required'],
    [
      doc([{ name: 'a', host: 'h.test', tls: 'maybe' }]),
      'my.json: targets[0].tls: must be none, opportunistic, required or implicit',
    ],
    [
      doc([{ name: 'a', host: 'h.test', everyNthCyle: 3 }]),
      'my.json: targets[0].everyNthCyle: is not a known field',
    ],
    [
      doc([
        { name: 'a', host: 'h.test' },
        { name: 'a', host: 'i.test' },
      ]),
      'my.json: targets[1].name: "a" is already the name of targets[0]; names must be unique',
    ],
    [
      doc([{ name: 'a', host: 'h.test', command: ['ATRN a.test', 'ETRN b.test'] }]),
      'my.json: targets[0].command[0]: ATRN must be the last command',
    ],
    [
      doc([{ name: 'a', host: 'h.test', command: 'ETRN' }]),
      'my.json: targets[0].command: ETRN needs a node',
    ],
    [
      doc([{ name: 'a', host: 'h.test', command: 'QUIT' }]),
      'my.json: targets[0].command: QUIT is sent by dequeue itself',
    ],
    [
      doc([{ name: 'a', host: 'h.test', ehlo: false, auth: { secretId: 's' } }]),
      'my.json: targets[0].auth: AUTH needs EHLO',
    ],
    [
      doc([{ name: 'a', host: 'h.test', protocol: 'raw', auth: { secretId: 's' } }]),
      'my.json: targets[0].auth: AUTH needs the smtp protocol',
    ],
    [
      doc([{ name: 'a', host: 'h.test', auth: { secretId: 's', mechanism: 'GSSAPI' } }]),
      'my.json: targets[0].auth.mechanism: must be PLAIN, LOGIN or CRAM-MD5',
    ],
    [
      doc([{ name: 'a', host: 'h.test', command: 'ATRN' }]),
      'my.json: targets[0].auth: ATRN needs "auth": RFC 2645 section 5 requires the client to authenticate',
    ],
    [doc([], { everyNthCycle: -1 }), 'my.json: settings.everyNthCycle: must be at least 0'],
    [doc([], { concurrency: 2.5 }), 'my.json: settings.concurrency: must be an integer'],
    [{ targets: 'x' }, 'my.json: targets: must be an array of targets'],
    [{ settings: {}, targets: [], extra: 1 }, 'my.json: extra: is not a known field'],
    [[], 'my.json: must be a JSON object'],
  ])('rejects %j', (input, message) => {
    expect(parseErr(input)).toContain(message);
  });

  it('trims spaces and tabs around a command instead of sending them ("ETRN example.com " would ask for "example.com ")', () => {
    const t = parseTarget(
      { name: 'a', host: 'h.test', command: [' ETRN example.com ', 'ETRN\tother.test\t', '  '] },
      'my.json',
    );
    expect(t.commands).toEqual(['ETRN example.com', 'ETRN\tother.test']);
    expect(
      parseTarget({ name: 'f', host: 'h.test', protocol: 'raw', command: 'customer ' }, 'my.json')
        .commands,
    ).toEqual(['customer']);
  });

  it("parses one target on its own with the caller's names (the Lambda reads one SSM parameter each)", () => {
    expect(() =>
      parseTarget({ name: 'a', host: 'h.test', port: 'x' }, '/dequeue/targets/a'),
    ).toThrow('/dequeue/targets/a: port: must be a number');
  });
});
