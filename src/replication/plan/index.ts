/**
 * Desired replication (config) + what the servers have (catalogs) + what prodhome applied
 * before (replication.json) → an ordered list of Steps, each with the SQL it runs and a one-line
 * reason. Printed as is, a plan is the step-by-step manual procedure; applied, it converges.
 * Planning happens in stages, because later stages read what earlier ones create (the
 * subscriber's copy of a table is read from the publisher's catalog once the table exists).
 */

import { planDrops } from './drops.js';
import { planPublications } from './publications.js';
import { planSchema } from './schema.js';
import { planSettings } from './settings.js';
import { planSubscriptions } from './subscriptions.js';
import type { PlanContext, Stage, StagePlan } from './types.js';

export async function planStage(stage: Stage, ctx: PlanContext): Promise<StagePlan> {
  switch (stage) {
    case 'drops':
      return planDrops(ctx);
    case 'settings':
      return planSettings(ctx);
    case 'schema':
      return planSchema(ctx);
    case 'publications':
      return planPublications(ctx);
    case 'subscriptions':
      return planSubscriptions(ctx);
  }
}

export { REPLICATION_ROLE, STAGES, emptyApplied, type AppliedState, type PlanContext, type PlanNode, type Problem, type Stage, type StagePlan, type Step } from './types.js';
export { filterColumns } from './publications.js';
export { slotName } from './subscriptions.js';
