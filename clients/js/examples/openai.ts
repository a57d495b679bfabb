// Every chat completion of this client is metered on the user's balance (run with OPENAI_API_KEY, QUOTAFLOW_URL
// and QUOTAFLOW_API_KEY set).
import OpenAI from "openai";
import { createClient, InsufficientQuotaError } from "quotaflow";
import { meter } from "quotaflow/openai";

const qf = createClient();
const openai = meter(new OpenAI(), qf, { userId: "u1", meters: { tokens: "tokens", cents: "cents" } });
const messages: OpenAI.Chat.ChatCompletionMessageParam[] = [{ role: "user", content: "Name three primes." }];

try {
  const completion = await openai.chat.completions.create({ model: "gpt-4o", max_tokens: 400, messages });
  console.log(completion.choices[0]?.message.content, completion.usage?.total_tokens);

  const stream = await openai.chat.completions.create({ model: "gpt-4o", max_tokens: 400, messages, stream: true });
  for await (const chunk of stream) process.stdout.write(chunk.choices[0]?.delta.content ?? "");
} catch (error) {
  if (!(error instanceof InsufficientQuotaError)) throw error;
  console.log(`out of ${error.meter}: ${error.available} left`); // OpenAI never saw the request
}
