import crypto from 'node:crypto';

/**
 * The SCRAM-SHA-256 verifier Postgres itself would store for `password` (RFC 5802/7677, as
 * pg_authid.rolpassword spells it). Given to CREATE/ALTER ROLE … PASSWORD, the server stores it
 * as is: the password never reaches the server. Passwords here are prodhome's own (ASCII), for
 * which SASLprep changes nothing.
 */
export function scramVerifier(password: string, iterations = 4096): string {
  const salt = crypto.randomBytes(16);
  const salted = crypto.pbkdf2Sync(Buffer.from(password, 'utf8'), salt, iterations, 32, 'sha256');
  const hmac = (key: Buffer, text: string) => crypto.createHmac('sha256', key).update(text).digest();
  const storedKey = crypto.createHash('sha256').update(hmac(salted, 'Client Key')).digest();
  const serverKey = hmac(salted, 'Server Key');
  return `SCRAM-SHA-256$${iterations}:${salt.toString('base64')}$${storedKey.toString('base64')}:${serverKey.toString('base64')}`;
}
