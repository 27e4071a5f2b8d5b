/**
 * Static egress cannot vanish by omission: the app takes it only when cdk.json's context block
 * holds it too (lib/egress-options.ts), and `egressPorts` is read from either form of context.
 */
import { describe, expect, it } from 'vitest';
import { DeploymentOptionsError, deploymentOptionsFrom } from '../../lib/deployment-options';

/** `given` is all the context (cdk.json merged with -c), `committed` cdk.json's block alone. */
function options(given: Record<string, unknown>, committed: Record<string, unknown> = given) {
  return deploymentOptionsFrom(
    (key) => given[key],
    Object.keys(given),
    (key) => committed[key],
  );
}

function rejection(given: Record<string, unknown>, committed?: Record<string, unknown>) {
  try {
    options(given, committed);
  } catch (error) {
    if (error instanceof DeploymentOptionsError) return error;
    throw error;
  }
  throw new Error(`accepted ${JSON.stringify(given)}`);
}

describe('static egress is committed to cdk.json', () => {
  it('refuses -c staticEgress=true alone: the next deploy without it would tear the network down', () => {
    const error = rejection({ staticEgress: 'true' }, {});
    expect(error.contextKey).toBe('staticEgress');
    expect(error.message).toBe(
      'Context "staticEgress" must be set in the "context" block of cdk.json ("staticEgress": true), not only with -c: a later deploy without -c would remove the VPC and NAT gateway, leave the kept Elastic IP billed and unused, and lose port 25.',
    );
    // cdk.json saying false is no better: -c overrides it for one deploy only.
    expect(rejection({ staticEgress: 'true' }, { staticEgress: false }).contextKey).toBe(
      'staticEgress',
    );
  });

  it('takes it from cdk.json, with or without the same -c', () => {
    expect(options({ staticEgress: true }).staticEgress).toBe(true);
    expect(options({ staticEgress: 'true' }, { staticEgress: true }).staticEgress).toBe(true);
  });

  it('turns it off only when told so: -c staticEgress=false over cdk.json, or false there', () => {
    expect(options({ staticEgress: 'false' }, { staticEgress: true }).staticEgress).toBe(false);
    expect(options({}, {}).staticEgress).toBe(false);
  });

  it('refuses an Elastic IP given only with -c: a later deploy would put a new address on the NAT', () => {
    const error = rejection(
      { staticEgress: true, egressAllocationId: 'eipalloc-0123456789abcdef0' },
      { staticEgress: true },
    );
    expect(error.contextKey).toBe('egressAllocationId');
    expect(error.message).toContain(
      '"egressAllocationId": "eipalloc-0123456789abcdef0"), not only with -c',
    );
    expect(
      options({ staticEgress: true, egressAllocationId: 'eipalloc-0123456789abcdef0' })
        .egressAllocationId,
    ).toBe('eipalloc-0123456789abcdef0');
  });
});

describe('egressPorts', () => {
  it('reads a -c list and a cdk.json array alike', () => {
    expect(options({ staticEgress: true, egressPorts: '25, 366,2525' }).egressPorts).toEqual([
      25, 366, 2525,
    ]);
    expect(options({ staticEgress: true, egressPorts: [25, 2525] }).egressPorts).toEqual([
      25, 2525,
    ]);
    expect(options({ staticEgress: true }).egressPorts).toBeUndefined();
  });

  it.each([['25,smtp'], ['0'], ['25,70000'], [[25, 2.5]], [[]]])(
    'refuses %j, naming the key',
    (egressPorts) => {
      const error = rejection({ staticEgress: true, egressPorts });
      expect(error.contextKey).toBe('egressPorts');
      expect(error.message).toMatch(
        /^Context "egressPorts" must (name at least one port|be TCP ports from 1 to 65535)/,
      );
    },
  );

  it('refuses ports without static egress: outside a VPC there is no security group', () => {
    const error = rejection({ egressPorts: '25' });
    expect(error.contextKey).toBe('egressPorts');
    expect(error.message).toContain('only applies with static egress');
  });
});
