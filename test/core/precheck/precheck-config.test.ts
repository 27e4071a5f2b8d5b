/**
 * `precheck` in the configuration: its forms, its defaults, and the places it cannot go, each
 * refused with the file and the field named before anything is sent.
 */
import { describe, expect, it } from 'vitest';
import { parseConfigDocument, parseSettings, parseTarget } from '../../../lambda/core/config';
import { precheckFor } from '../../../lambda/core/precheck/precheck-config';

const etrn = { name: 'isp', host: 'relay.isp.example', command: 'ETRN customer.example' };

function parsed(target: object, settings: object = {}) {
  return parseConfigDocument({ settings, targets: [{ ...etrn, ...target }] }, 'dequeue.json');
}

function refusal(target: object, settings: object = {}): string {
  try {
    parsed(target, settings);
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error('accepted');
}

describe('precheck in the configuration', () => {
  it('a server gets port 25, a 10 s bound and no TLS unless it says otherwise', () => {
    expect(parsed({ precheck: { host: 'mx1.customer.example' } }).targets[0]!.precheck).toEqual({
      host: 'mx1.customer.example',
      port: 25,
      timeoutSeconds: 10,
      tls: 'none',
    });
    expect(
      parsed({ precheck: { host: '192.0.2.1', port: 465, timeoutSeconds: 3, tls: 'implicit' } })
        .targets[0]!.precheck,
    ).toEqual({ host: '192.0.2.1', port: 465, timeoutSeconds: 3, tls: 'implicit' });
  });

  it('"mx" and false are kept as they are; absent stays absent', () => {
    expect(parsed({ precheck: 'mx' }).targets[0]!.precheck).toBe('mx');
    expect(parsed({ precheck: false }).targets[0]!.precheck).toBe(false);
    expect(parsed({}).targets[0]).not.toHaveProperty('precheck');
  });

  it('a wrong field is named by its path, a typo gets its likely meaning', () => {
    expect(refusal({ precheck: { host: 'mx', port: 'x' } })).toBe(
      'dequeue.json: targets[0].precheck.port: must be a number',
    );
    expect(refusal({ precheck: { host: 'mx', tls: 'opportunistic' } })).toBe(
      'dequeue.json: targets[0].precheck.tls: must be none, required or implicit',
    );
    expect(refusal({ precheck: { host: 'mx', timeoutSecond: 5 } })).toBe(
      'dequeue.json: targets[0].precheck.timeoutSecond: is not a known field: did you mean "timeoutSeconds"?',
    );
    expect(refusal({ precheck: 'MX' })).toBe(
      'dequeue.json: targets[0].precheck: must be "mx", false, or an object {"host", "port", "timeoutSeconds", "tls"}',
    );
    expect(refusal({}, { precheck: false })).toBe(
      'dequeue.json: settings.precheck: must be "mx" or an object {"host", "port", "timeoutSeconds", "tls"}',
    );
  });

  it('ATRN refuses a check: the mail comes to us over the same connection', () => {
    expect(
      refusal({
        command: 'ATRN example.com',
        auth: { secretId: 's' },
        port: 366,
        precheck: { host: 'mx' },
      }),
    ).toMatch(/^dequeue\.json: targets\[0\]\.precheck: ATRN brings the mail to us/);
  });

  it('"mx" needs a domain: a bare connection or a #queue has no MX records', () => {
    expect(refusal({ command: '', precheck: 'mx' })).toMatch(
      /targets\[0\]\.precheck: "mx" needs ETRN or QSND domains .*name the server to check/,
    );
    expect(refusal({ command: 'ETRN #outbound', precheck: 'mx' })).toMatch(
      /"ETRN #outbound" names a queue, not a domain/,
    );
    // A bare connection with a named server is what the check is for.
    expect(
      parsed({ command: '', precheck: { host: 'mx1.customer.example' } }).targets,
    ).toHaveLength(1);
  });

  it('settings.precheck reaches every target that does not say otherwise, never ATRN', () => {
    const settings = parseSettings({ precheck: 'mx' }, 'dequeue.json');
    const target = parseTarget(etrn, 'dequeue.json');
    expect(precheckFor(target, settings, 'dequeue.json', 'precheck')).toBe('mx');
    const off = parseTarget({ ...etrn, precheck: false }, 'dequeue.json');
    expect(precheckFor(off, settings, 'dequeue.json', 'precheck')).toBeUndefined();
    const atrn = parseTarget(
      {
        name: 'odmr',
        host: 'odmr.isp.example',
        command: 'ATRN',
        mail: { domains: ['example.com'] },
        auth: { secretId: 's' },
      },
      'dequeue.json',
    );
    expect(precheckFor(atrn, settings, 'dequeue.json', 'precheck')).toBeUndefined();
  });

  it('settings "mx" meeting a bare connection is that target\'s error, naming the way out', () => {
    expect(refusal({ command: '' }, { precheck: 'mx' })).toMatch(
      /^dequeue\.json: targets\[0\]\.precheck: settings\.precheck is "mx", which needs ETRN or QSND domains .*or set "precheck": false on this target$/,
    );
    expect(parsed({ command: '', precheck: false }, { precheck: 'mx' }).targets).toHaveLength(1);
  });
});
