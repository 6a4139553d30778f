/**
 * How the sidecar authenticates, whatever the transport: the ssh-agent, then identity files, an
 * encrypted key's passphrase from an environment variable; never a password
 * (src/ssh/ssh2/auth.ts plans the methods for ssh2).
 */

/** Default env var holding the passphrase of encrypted identity files. */
export const PASSPHRASE_ENV = "PARSL_SIDECAR_KEY_PASSPHRASE";

export interface AuthOptions {
  /** env var with the passphrase (default PARSL_SIDECAR_KEY_PASSPHRASE) */
  passphraseEnv?: string;
  /** use the agent (default: when $SSH_AUTH_SOCK or IdentityAgent names one) */
  agent?: boolean;
  /** no key is fine: the server may take a code or a password (asked of the user) */
  allowEmpty?: boolean;
}
