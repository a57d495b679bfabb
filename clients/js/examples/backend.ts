// An agent run on one reservation: draw per step, grow the hold, keep it alive, then commit what is left.
import { createClient, ReservationExpiredError, type Reservation } from "quotaflow";

const qf = createClient({ timeoutMs: 5_000, retry: { attemptsMax: 3 } });

export async function agentRun(userId: string, steps: string[], signal: AbortSignal): Promise<number> {
  const run: Reservation = await qf.reserve(userId, { tokens: 20_000, requests: steps.length }, { ttlSeconds: 600, signal });
  try {
    let used = 0;
    for (const step of steps) {
      const stepTokens = step.length; // what the model reported for this step
      const drawn = await run.draw({ tokens: stepTokens, requests: 1 }, { properties: { step }, signal });
      used += stepTokens;
      if ((drawn.held.find((line) => line.meter === "tokens")?.amount ?? 0) < 5_000) await run.increase({ tokens: 10_000 });
      await run.extend(600);
    }
    await run.commit({});
    return used;
  } catch (error) {
    if (!(error instanceof ReservationExpiredError)) await run.release();
    throw error;
  }
}
