import { conflict } from './conflict.js';
import { connections } from './connections.js';
import { cpu } from './cpu.js';
import { freeze } from './freeze.js';
import { idleTx } from './idle-tx.js';
import { kill } from './kill.js';
import { lock } from './lock.js';
import { memory } from './memory.js';
import { netFault } from './net.js';
import { restart } from './restart.js';
import { slot } from './slot.js';
import { stop } from './stop.js';
import type { Fault, FaultKind } from './types.js';

/** Every fault, by name; one that is missing here is a build error, not a silent gap. */
export const faults = {
  kill,
  stop,
  restart,
  freeze,
  cpu,
  memory,
  connections,
  lock,
  'idle-tx': idleTx,
  slot,
  conflict,
  net: netFault,
} satisfies Record<FaultKind, Fault>;
