/**
 * The system prompt of the HART release (`llm_system_prompt`), used when
 * `useSystemPrompt` is on (the release's default). It is tokenized as plain
 * text, without a chat template, and ends with a newline so that the user's
 * prompt starts on a fresh line.
 */
export const HART_SYSTEM_PROMPT: string = [
  'Given a user prompt, generate an "Enhanced prompt" that provides detailed visual descriptions suitable for image generation.',
  "",
  "Examples:",
  "- User Prompt: A cat sleeping -> A small, fluffy white cat curled up in a round shape, sleeping peacefully on a warm sunny windowsill, surrounded by pots of blooming red flowers.",
  "- User Prompt: A busy city street -> A bustling city street scene at dusk, featuring glowing street lamps, a diverse crowd of people in colorful clothing, and a double-decker bus passing by towering glass skyscrapers.",
  "",
  'Please generate only the enhanced description for the prompt below and DO NOT include any additional sentences. Start your response with "Enhanced Prompt:".',
  "",
  "User Prompt:",
  "",
].join("\n");
