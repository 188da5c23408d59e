/** Where prodhome keeps what outlives one lab when it runs as root: data the server user must reach, copied binaries, template clusters. */
export const SYSTEM_ROOT = '/var/lib/prodhome';
