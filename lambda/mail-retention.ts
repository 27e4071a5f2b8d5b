/**
 * The tag that lets an old version of stored mail expire (lib/mail-store.ts): `dequeue deliver`
 * puts it on a message's and its envelope's current version just before it takes the message out
 * of the store, and the bucket's lifecycle expires only old versions that carry it. The function
 * cannot tag (no s3:PutObjectTagging), so nothing it overwrites or withdraws ever expires.
 */
export const EXPIRY_TAG = { key: 'dequeue-expiry', value: 'allowed' } as const;
