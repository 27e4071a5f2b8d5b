/**
 * A DNS server on loopback UDP that answers from a table (RFC 1035 section 4), for the MX
 * resolver's tests: MX, A and AAAA records, NXDOMAIN (RCODE 3), SERVFAIL (RCODE 2), a name that
 * exists with no record of the type asked (NOERROR, no answer: "NODATA", RFC 2308), and silence.
 * Names are compared case-insensitively; one question per query, as resolvers send.
 */
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';

export interface DnsZone {
  readonly mx?: readonly { readonly exchange: string; readonly priority: number }[];
  readonly a?: readonly string[];
  readonly aaaa?: readonly string[];
  /** Answer every query for the name with this: NXDOMAIN, SERVFAIL, or none at all. */
  readonly fail?: 'nxdomain' | 'servfail' | 'silence';
}

const TYPE = { A: 1, MX: 15, AAAA: 28 } as const;

export class ScriptedDnsServer {
  private socket: Socket | null = null;
  /** The questions asked, as `name TYPE` (type by number when not one of ours). */
  readonly asked: string[] = [];

  constructor(private readonly zones: Readonly<Record<string, DnsZone>>) {}

  /** `host:port` for `Resolver.setServers`. */
  address = '';

  async start(): Promise<this> {
    const socket = createSocket('udp4');
    this.socket = socket;
    socket.on('message', (query, from) => this.answer(query, from));
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(0, '127.0.0.1', () => resolve());
    });
    this.address = `127.0.0.1:${socket.address().port}`;
    return this;
  }

  async stop(): Promise<void> {
    const socket = this.socket;
    this.socket = null;
    if (socket) await new Promise<void>((resolve) => socket.close(() => resolve()));
  }

  private answer(query: Buffer, from: RemoteInfo): void {
    if (query.length < 12) return;
    let at = 12;
    const labels: string[] = [];
    while (at < query.length && query[at] !== 0) {
      const length = query[at]!;
      labels.push(query.subarray(at + 1, at + 1 + length).toString('latin1'));
      at += 1 + length;
    }
    const questionEnd = at + 5;
    if (questionEnd > query.length) return;
    const type = query.readUInt16BE(at + 1);
    const name = labels.join('.').toLowerCase();
    const typeName = Object.entries(TYPE).find(([, n]) => n === type)?.[0] ?? String(type);
    this.asked.push(`${name} ${typeName}`);
    const zone = this.zones[name];
    if (zone?.fail === 'silence') return;
    const rcode = !zone || zone.fail === 'nxdomain' ? 3 : zone.fail === 'servfail' ? 2 : 0;
    const records: Buffer[] = [];
    if (rcode === 0 && zone) {
      if (type === TYPE.MX)
        for (const mx of zone.mx ?? []) {
          const pref = Buffer.alloc(2);
          pref.writeUInt16BE(mx.priority);
          records.push(record(TYPE.MX, Buffer.concat([pref, encodeName(mx.exchange)])));
        }
      if (type === TYPE.A)
        for (const a of zone.a ?? [])
          records.push(record(TYPE.A, Buffer.from(a.split('.').map(Number))));
      if (type === TYPE.AAAA)
        for (const a of zone.aaaa ?? []) records.push(record(TYPE.AAAA, ipv6(a)));
    }
    const header = Buffer.alloc(12);
    query.copy(header, 0, 0, 2); // the query's ID
    header.writeUInt16BE(0x8180 | rcode, 2); // QR, RD, RA
    header.writeUInt16BE(1, 4);
    header.writeUInt16BE(records.length, 6);
    const reply = Buffer.concat([header, query.subarray(12, questionEnd), ...records]);
    this.socket?.send(reply, from.port, from.address);
  }
}

/** One answer for the question's name (a pointer to offset 12), class IN, TTL 60. */
function record(type: number, data: Buffer): Buffer {
  const fixed = Buffer.alloc(12);
  fixed.writeUInt16BE(0xc00c, 0);
  fixed.writeUInt16BE(type, 2);
  fixed.writeUInt16BE(1, 4);
  fixed.writeUInt32BE(60, 6);
  fixed.writeUInt16BE(data.length, 10);
  return Buffer.concat([fixed, data]);
}

function encodeName(name: string): Buffer {
  const labels = name.replace(/\.$/, '').split('.').filter(Boolean);
  return Buffer.concat([
    ...labels.map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l, 'latin1')])),
    Buffer.from([0]),
  ]);
}

function ipv6(address: string): Buffer {
  const [head, tail] = address.split('::') as [string, string | undefined];
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = [...left, ...Array(8 - left.length - right.length).fill('0'), ...right];
  const out = Buffer.alloc(16);
  for (const [i, g] of groups.entries()) out.writeUInt16BE(Number.parseInt(g, 16), i * 2);
  return out;
}
