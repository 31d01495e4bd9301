// The operator, with the admin token: tenants, their keys and limits, usage. `asTenant(slug)`
// is a `Herald` acting as that tenant (the admin token with `Herald-Tenant`).

import { Herald } from "./tenant.js";
import { type ClientOptions, Transport } from "./transport.js";

const segment = encodeURIComponent;

export interface NewTenant {
  slug: string;
  name?: string;
  allowed_origins?: string[];
  retention?: { max_age_secs?: number | null; max_events?: number | null };
  limits?: Record<string, number | null>;
}

export class HeraldOperator {
  /** Which method covers each API operation; a test holds it to Herald's /openapi.json. */
  static readonly OPERATIONS: Record<string, keyof HeraldOperator> = {
    "POST /admin/tenants": "createTenant",
    "GET /admin/tenants": "tenantsPage",
    "GET /admin/tenants/{slug}": "getTenant",
    "PATCH /admin/tenants/{slug}": "updateTenant",
    "DELETE /admin/tenants/{slug}": "deleteTenant",
    "GET /admin/tenants/{slug}/usage": "tenantUsage",
    "GET /admin/usage": "usage",
    "POST /admin/tenants/{slug}/api-keys": "createApiKey",
    "GET /admin/tenants/{slug}/api-keys": "apiKeys",
    "DELETE /admin/tenants/{slug}/api-keys/{id}": "revokeApiKey",
    "POST /admin/tenants/{slug}/signing-keys": "createSigningKey",
    "GET /admin/tenants/{slug}/signing-keys": "signingKeys",
    "DELETE /admin/tenants/{slug}/signing-keys/{kid}": "revokeSigningKey",
    "GET /admin/tenants/{slug}/webhooks": "tenantWebhooks",
  };

  private readonly transport: Transport;

  constructor(
    private readonly url: string,
    private readonly adminToken: string,
    private readonly options: ClientOptions = {},
  ) {
    this.transport = new Transport(url, adminToken, options);
  }

  createTenant(tenant: NewTenant): Promise<any> {
    return this.transport.run({ method: "POST", path: "/admin/tenants", body: { allowed_origins: [], ...tenant }, repeatable: false });
  }

  /** A page of tenants in slug order: `{tenants, next}`. */
  tenantsPage(options: { after?: string; limit?: number } = {}): Promise<{ tenants: any[]; next: string | null }> {
    return this.transport.run({ method: "GET", path: "/admin/tenants", query: { after: options.after, limit: options.limit ?? 100 } });
  }

  /** Every tenant, in slug order, page by page. */
  async *tenants(options: { pageSize?: number } = {}): AsyncGenerator<any> {
    let after: string | undefined;
    for (;;) {
      const page = await this.tenantsPage({ after, limit: options.pageSize ?? 100 });
      yield* page.tenants;
      if (!page.next) return;
      after = page.next;
    }
  }

  getTenant(slug: string): Promise<any> {
    return this.transport.run({ method: "GET", path: `/admin/tenants/${segment(slug)}` });
  }

  /** Changes the fields given (`name`, `allowed_origins`, `retention`, `limits`). */
  updateTenant(slug: string, changes: Omit<Partial<NewTenant>, "slug">): Promise<any> {
    return this.transport.run({ method: "PATCH", path: `/admin/tenants/${segment(slug)}`, body: changes });
  }

  /** Sets the limits given (`null`: back to the server's default); the tenant after. */
  setLimits(slug: string, limits: Record<string, number | null>): Promise<any> {
    return this.updateTenant(slug, { limits });
  }

  async deleteTenant(slug: string): Promise<void> {
    await this.transport.run({ method: "DELETE", path: `/admin/tenants/${segment(slug)}` });
  }

  tenantUsage(slug: string): Promise<any> {
    return this.transport.run({ method: "GET", path: `/admin/tenants/${segment(slug)}/usage` });
  }

  /** Every tenant's days and hours summed. */
  usage(): Promise<any> {
    return this.transport.run({ method: "GET", path: "/admin/usage" });
  }

  /** A new API key; its `key` is in this answer only. */
  createApiKey(slug: string, options: { name?: string } = {}): Promise<any> {
    return this.transport.run({ method: "POST", path: `/admin/tenants/${segment(slug)}/api-keys`, body: options, repeatable: false });
  }

  async apiKeys(slug: string): Promise<any[]> {
    return (await this.transport.run({ method: "GET", path: `/admin/tenants/${segment(slug)}/api-keys` })).api_keys;
  }

  async revokeApiKey(slug: string, id: string): Promise<void> {
    await this.transport.run({ method: "DELETE", path: `/admin/tenants/${segment(slug)}/api-keys/${segment(id)}` });
  }

  /** HS256 (the default): Herald makes the `secret`, in this answer only; ES256, EdDSA,
   * RS256: give `public_key_pem`. */
  createSigningKey(slug: string, key: { alg?: string; public_key_pem?: string } = {}): Promise<any> {
    return this.transport.run({ method: "POST", path: `/admin/tenants/${segment(slug)}/signing-keys`, body: { alg: "HS256", ...key }, repeatable: false });
  }

  async signingKeys(slug: string): Promise<any[]> {
    return (await this.transport.run({ method: "GET", path: `/admin/tenants/${segment(slug)}/signing-keys` })).signing_keys;
  }

  async revokeSigningKey(slug: string, kid: string): Promise<void> {
    await this.transport.run({ method: "DELETE", path: `/admin/tenants/${segment(slug)}/signing-keys/${segment(kid)}` });
  }

  async tenantWebhooks(slug: string): Promise<any[]> {
    return (await this.transport.run({ method: "GET", path: `/admin/tenants/${segment(slug)}/webhooks` })).webhooks;
  }

  /** A `Herald` acting as tenant `slug`. */
  asTenant(slug: string): Herald {
    return new Herald(this.url, this.adminToken, this.options, slug);
  }
}
