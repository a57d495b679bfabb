// Metering for the `openai` client: `meter(openai, qf, { userId })` answers like the client itself, and each
// chat completion reserves its worst case first (prompt estimate + output cap), calls OpenAI only if the hold
// succeeded, commits the usage OpenAI reports, releases on an OpenAI error, and never leaves a hold pending:
// a stream closed early commits what was produced so far. Only types are imported from `openai`.

import type OpenAI from "openai";
import type { Stream } from "openai/streaming";

import type { QuotaflowClient } from "./client.js";
import type { Reservation } from "./reservation.js";
import type { Amounts, UsageLines } from "./types.js";

type Completions = OpenAI["chat"]["completions"];
type OpenAIRequestOptions = Parameters<Completions["create"]>[1];
type CreateParams = OpenAI.Chat.ChatCompletionCreateParams;
type ChatCompletion = OpenAI.Chat.ChatCompletion;
type ChatCompletionChunk = OpenAI.Chat.ChatCompletionChunk;
type CompletionUsage = OpenAI.CompletionUsage;

/** Where a call is charged: `tokens` gets its total tokens, `cents` its price at the tenant's model prices. */
export interface MeterNames {
  tokens?: string;
  cents?: string;
}

export interface MeterOptions {
  userId: string;
  /** Default `{ tokens: "tokens" }`; either may be left out. */
  meters?: MeterNames;
  /** The output cap held for a call that sets neither `max_completion_tokens` nor `max_tokens` (default 4096). */
  outputTokensWhenUnset?: number;
  /** How long a call's hold lives (default 900 s: a stream must finish within it). */
  ttlSeconds?: number;
}

export const OUTPUT_TOKENS_WHEN_UNSET_DEFAULT = 4096;
// A rough count, erring high: ~4 characters a token, plus each message's framing.
const CHARACTERS_PER_TOKEN = 4;
const TOKENS_PER_MESSAGE = 4;
const TOKENS_PER_PROMPT = 3;

export interface MeteredCompletions {
  create(body: OpenAI.Chat.ChatCompletionCreateParamsNonStreaming, options?: OpenAIRequestOptions): Promise<ChatCompletion>;
  create(body: OpenAI.Chat.ChatCompletionCreateParamsStreaming, options?: OpenAIRequestOptions): Promise<Stream<ChatCompletionChunk>>;
  create(body: CreateParams, options?: OpenAIRequestOptions): Promise<ChatCompletion | Stream<ChatCompletionChunk>>;
}

/** The client's own interface, with `chat.completions.create` metered (it resolves like the original's promise). */
export type MeteredOpenAI<C extends OpenAI = OpenAI> = Omit<C, "chat"> & {
  chat: Omit<C["chat"], "completions"> & { completions: Omit<C["chat"]["completions"], "create"> & MeteredCompletions };
};

export function meter<C extends OpenAI>(client: C, qf: QuotaflowClient, options: MeterOptions): MeteredOpenAI<C> {
  const meters = options.meters ?? { tokens: "tokens" };
  if (meters.tokens === undefined && meters.cents === undefined) throw new TypeError("meters names no meter to charge");
  const metering = new Metering(qf, { ...options, meters });
  const completions = overlay(client.chat.completions, {
    create: (body: CreateParams, requestOptions?: OpenAIRequestOptions) =>
      metering.create(client.chat.completions, body, requestOptions),
  });
  const chat = overlay(client.chat, { completions });
  return overlay(client, { chat }) as unknown as MeteredOpenAI<C>;
}

/** `target` with some properties replaced; everything else (methods, `this`) is the target's own. */
function overlay<T extends object>(target: T, replaced: Record<string, unknown>): T {
  return new Proxy(target, {
    get: (object, name, receiver) =>
      typeof name === "string" && Object.hasOwn(replaced, name) ? replaced[name] : Reflect.get(object, name, receiver),
  });
}

interface Call {
  model: string;
  promptTokens: number;
}

class Metering {
  constructor(
    private readonly qf: QuotaflowClient,
    private readonly options: MeterOptions & { meters: MeterNames },
  ) {}

  async create(completions: Completions, body: CreateParams, requestOptions: OpenAIRequestOptions) {
    const call: Call = { model: body.model, promptTokens: estimatePromptTokens(body.messages) };
    const outputCap = (body.max_completion_tokens ?? body.max_tokens ?? this.options.outputTokensWhenUnset ?? OUTPUT_TOKENS_WHEN_UNSET_DEFAULT) * (body.n ?? 1);
    const reservation = await this.qf.reserve(this.options.userId, await this.worstCase(call, outputCap), this.reserveOptions());
    let answer: ChatCompletion | Stream<ChatCompletionChunk>;
    try {
      // A stream reports its usage only when asked to (in one last chunk, with no choices).
      const sent = body.stream ? { ...body, stream_options: { ...body.stream_options, include_usage: true } } : body;
      answer = await completions.create(sent, requestOptions);
    } catch (error) {
      await reservation.release();
      throw error;
    }
    if (!isStream(answer)) {
      await reservation.commit(this.usageLines(call, answer.usage, textOf(answer)));
      return answer;
    }
    this.meterStream(answer, call, reservation);
    return answer;
  }

  private reserveOptions() {
    return this.options.ttlSeconds === undefined ? {} : { ttlSeconds: this.options.ttlSeconds };
  }

  private async worstCase(call: Call, outputCap: number): Promise<Amounts> {
    const { tokens, cents } = this.options.meters;
    const holds: Amounts = {};
    if (tokens !== undefined) holds[tokens] = call.promptTokens + outputCap;
    if (cents !== undefined) {
      const quote = await this.qf.quote(call.model, { inputTokens: call.promptTokens, maxOutputTokens: outputCap });
      holds[cents] = quote.costCents;
    }
    return holds;
  }

  /** What OpenAI reports; without a report (a stream cut short), the prompt estimate and what was produced. */
  private usageLines(call: Call, usage: CompletionUsage | null | undefined, producedText: string): UsageLines {
    const cached = usage?.prompt_tokens_details?.cached_tokens ?? 0;
    const prompt = usage?.prompt_tokens ?? call.promptTokens;
    const output = usage?.completion_tokens ?? estimateTokens(producedText);
    const { tokens, cents } = this.options.meters;
    const lines: UsageLines = {};
    if (tokens !== undefined) lines[tokens] = usage?.total_tokens ?? prompt + output;
    if (cents !== undefined) {
      lines[cents] = {
        fromModel: { model: call.model, inputTokens: Math.max(0, prompt - cached), cachedInputTokens: cached, outputTokens: output },
      };
    }
    return lines;
  }

  /** Wraps the stream's iteration (all of it: `for await`, `tee()`, `toReadableStream()`), which ends the hold. */
  private meterStream(stream: Stream<ChatCompletionChunk>, call: Call, reservation: Reservation): void {
    const metering = this;
    async function* metered(chunks: AsyncIterator<ChatCompletionChunk>): AsyncGenerator<ChatCompletionChunk> {
      let usage: CompletionUsage | undefined;
      let produced = "";
      let failure: unknown;
      try {
        for (let next = await chunks.next(); !next.done; next = await chunks.next()) {
          const chunk = next.value;
          if (chunk.usage) usage = chunk.usage;
          for (const choice of chunk.choices) produced += choice.delta?.content ?? "";
          yield chunk;
        }
      } catch (error) {
        failure = error;
        throw error;
      } finally {
        await chunks.return?.();
        if (failure !== undefined && usage === undefined && produced === "") await reservation.release();
        else await reservation.commit(metering.usageLines(call, usage, produced));
      }
    }
    const internal = stream as unknown as { iterator?: unknown };
    if (typeof internal.iterator === "function") {
      const produce = internal.iterator as () => AsyncIterator<ChatCompletionChunk>;
      internal.iterator = () => metered(produce.call(stream));
    } else {
      const iterate = stream[Symbol.asyncIterator].bind(stream);
      Object.defineProperty(stream, Symbol.asyncIterator, { value: () => metered(iterate()) });
    }
  }
}

function isStream(answer: ChatCompletion | Stream<ChatCompletionChunk>): answer is Stream<ChatCompletionChunk> {
  return typeof (answer as Partial<Stream<ChatCompletionChunk>>)[Symbol.asyncIterator] === "function";
}

function textOf(completion: ChatCompletion): string {
  return completion.choices.map((choice) => choice.message?.content ?? "").join("");
}

export function estimateTokens(text: string): number {
  return Math.ceil(text.length / CHARACTERS_PER_TOKEN);
}

/** The prompt's tokens, estimated from its text (an upper bound is the point: the hold is the worst case). */
export function estimatePromptTokens(messages: CreateParams["messages"]): number {
  let tokens = TOKENS_PER_PROMPT;
  for (const message of messages) {
    tokens += TOKENS_PER_MESSAGE + estimateTokens(JSON.stringify(message.content ?? ""));
    if ("tool_calls" in message && message.tool_calls) tokens += estimateTokens(JSON.stringify(message.tool_calls));
  }
  return tokens;
}
