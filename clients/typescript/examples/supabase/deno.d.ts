// The part of Deno's global API the edge function uses, for type-checking it with tsc here
// (Deno itself needs none of this).
declare namespace Deno {
  const env: { get(name: string): string | undefined };
  function serve(handler: (request: Request) => Response | Promise<Response>): unknown;
}
