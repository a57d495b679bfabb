// In the page: the publishable key and a token your backend minted for this user (createUserToken).
import { counter, createClient, type BrowserClient } from "quotaflow";

const qf: BrowserClient = createClient({
  baseUrl: "https://api.example.com",
  apiKey: "qf_pk_…",
  userToken: async () => (await fetch("/api/quotaflow-token")).text(),
});

export async function tokensLeft(userId: string): Promise<string> {
  const tokens = counter(await qf.usage(userId), "tokens");
  const { allowed } = await qf.canUse(userId, "tokens", 4000);
  return `${tokens.label}: ${tokens.remaining} of ${tokens.quota + tokens.credits}${allowed ? "" : " (too few for a long answer)"}`;
}
