vcl 4.1;
# Varnish for Strata: the web accelerator. Rendered by `strata up` / `strata config`;
# edit the template, not this file. One file serves every accelerator node.

import std;
import cookie;
import xkey;
import directors;

probe app_health {
    .url = "/-/health";
    .interval = 1s;
    .timeout = 1s;
    .window = 3;
    .threshold = 2;
    .initial = 2;
}

backend pool1 {
    .host = "10.0.1.1";
    .port = "8090";
    .probe = app_health;
    .connect_timeout = 2s;
    .first_byte_timeout = 30s;
    .between_bytes_timeout = 10s;
}
backend pool2 {
    .host = "10.0.1.2";
    .port = "8090";
    .probe = app_health;
    .connect_timeout = 2s;
    .first_byte_timeout = 30s;
    .between_bytes_timeout = 10s;
}

# Who may purge: the app servers' addresses, and they must also send the shared secret.
acl purgers {
    "10.0.3.1";
    "10.0.3.2";
    "10.0.3.3";
    "10.0.3.4";
}

sub vcl_init {
    new pool = directors.round_robin();
    pool.add_backend(pool1);
    pool.add_backend(pool2);
}

sub vcl_recv {
    set req.backend_hint = pool.backend();
    # This accelerator's liveness (strata up waits for it): Varnish answers alone.
    if (req.url == "/-/varnish-health") {
        return (synth(200, "OK"));
    }
    # The load balancer's readiness check: a node that missed purges (down or cut off
    # while a write committed) stays out of rotation until they are delivered. Only the
    # app knows what it owes this node (strata.edge.fence): ask it, naming the node by
    # the address and port the check arrived on, and saying since when this node's cache
    # exists (a node that restarted after the missed purges holds nothing older). Never
    # cached; no cookie goes along.
    if (req.url == "/-/varnish-epoch") {
        return (synth(404, "Not found"));
    }
    if (req.url == "/-/varnish-ready") {
        if (req.method != "GET" && req.method != "HEAD") {
            return (synth(405, "Method not allowed"));
        }
        unset req.http.Cookie;
        unset req.http.Authorization;
        unset req.http.Host;
        unset req.http.X-Forwarded-Proto;
        # This node's probes of the app pool fail (it is just back from a partition,
        # or the pool is down): every miss would be an error. The load balancer sends
        # to it again once they pass (when the whole pool is down, it serves from grace
        # through another backend).
        if (!std.healthy(req.backend_hint)) {
            return (synth(503, "Not ready: the app pool does not answer this node"));
        }
        if (req.restarts == 0) {
            # First look up the cache's birth time (vcl_deliver comes back here with it).
            unset req.http.X-Strata-Epoch;
            set req.method = "GET";
            set req.url = "/-/varnish-epoch";
            return (hash);
        }
        set req.http.X-Strata-Accelerator = local.ip + ":" + std.port(local.ip);
        return (pass);
    }
    if (req.method == "PURGE") {
        # Purges come from the app servers on the plain listener, never through the
        # load balancer's PROXY listener.
        if (local.socket != "purge") {
            return (synth(403, "Forbidden"));
        }
        # The secret is read from a file on this node (once per VCL load), never
        # written into the VCL; a missing or short file refuses every purge.
        if (client.ip !~ purgers
            || req.http.X-Purge-Secret !~ "^[A-Za-z0-9_.~+/=-]{16,200}$"
            || req.http.X-Purge-Secret != regsub(std.fileread("/etc/varnish/strata-purge-secret"), "\s+$", "")) {
            return (synth(403, "Forbidden"));
        }
        # The purger lost track of what this node missed (the log was trimmed or lost
        # past it): every object goes, the birth certificate too (strata.bus.purger).
        if (req.http.X-Strata-Purge-All == "1") {
            if (std.ban("obj.status != 0")) {
                return (synth(200, "Banned all"));
            }
            return (synth(500, "Ban failed: " + std.ban_error()));
        }
        if (req.http.xkey-purge) {
            set req.http.n-gone = xkey.purge(req.http.xkey-purge);
            return (synth(200, "Purged " + req.http.n-gone));
        }
        if (req.http.xkey-softpurge) {
            set req.http.n-gone = xkey.softpurge(req.http.xkey-softpurge);
            return (synth(200, "Softpurged " + req.http.n-gone));
        }
        return (synth(400, "No key"));
    }
    if (req.method == "BAN") {
        return (synth(405, "Method not allowed"));
    }

    # Only the validated host names are served; anything else would become a cache key.
    # The port stays in Host: Django's CSRF check compares it with the browser's Origin.
    # One anchored match, port and all: no copy of the Host without its port.
    set req.http.Host = std.tolower(req.http.Host);
    if (req.http.Host !~ "^(news\.example\.com|www\.news\.example\.com)(:[0-9]+)?$") {
        return (synth(400, "Unknown host"));
    }

    # Only Varnish marks a request as a retry after the app servers failed it.
    if (req.restarts == 0) {
        unset req.http.X-Strata-Grace;
        unset req.http.X-Cache;
    }

    # Only Varnish says a request is an ESI sub-request (holes answer differently then).
    unset req.http.X-Strata-ESI;
    if (req.esi_level > 0) {
        set req.http.X-Strata-ESI = "1";
    }

    if (req.method != "GET" && req.method != "HEAD") {
        return (pass);
    }
    # strata bench's warm and cold tiers measure Django, never a cached copy; only a
    # request with the secret may ask for that.
    if (req.http.X-Strata-Bench) {
        if (req.http.X-Strata-Bench-Secret ~ "^[A-Za-z0-9_.~+/=-]{16,200}$"
            && req.http.X-Strata-Bench-Secret == regsub(std.fileread("/etc/varnish/strata-purge-secret"), "\s+$", "")) {
            return (pass);
        }
        unset req.http.X-Strata-Bench;
        unset req.http.X-Strata-Bench-Secret;
    }
    # Personal holes are per user: always to Django, with the user's cookies.
    if (req.url ~ "^/\-/hole/") {
        return (pass);
    }

    # Tracking parameters never change a page (Django's page cache leaves them out of its
    # key and hides them from views): one object for every campaign link.
    if (req.url ~ "[?&](utm_[^=&]*|fbclid|gclid|dclid|msclkid|yclid|mc_cid|mc_eid|_ga|_gl)(=|&|$)") {
        set req.url = regsuball(req.url, "(?<=[?&])(utm_[^=&]*|fbclid|gclid|dclid|msclkid|yclid|mc_cid|mc_eid|_ga|_gl)(=[^&]*)?(&|$)", "");
        set req.url = regsub(req.url, "[?&]$", "");
    }
    # Keep only the cookies Django needs; analytics cookies would split the cache.
    if (req.http.Cookie) {
        cookie.parse(req.http.Cookie);
        cookie.keep("sessionid,csrftoken,messages,strata_primary");
        set req.http.Cookie = cookie.get_string();
        if (req.http.Cookie == "") {
            unset req.http.Cookie;
        }
    }
    # Personal requests go to Django, never to the cache.
    # Django's messages ("Saved.") are for one person, shown once: never from the cache.
    # A client that has just written reads from the database primary for a while
    # (strata.replicas, its signed cookie), not from what a replica returned.
    if (req.http.Authorization || req.http.Cookie ~ "(^|;\s*)sessionid="
        || req.http.Cookie ~ "(^|;\s*)messages="
        || req.http.Cookie ~ "(^|;\s*)strata_primary=") {
        return (pass);
    }
    # Anonymous reads need no CSRF cookie; without it the response can be shared.
    unset req.http.Cookie;

    # Serve expired objects for a short while when the app servers are healthy
    # (one background refresh), and for much longer when they are down or just failed
    # this very request (the database is down: stale-if-error). Purged objects are gone,
    # so grace never brings back content a write changed.
    if (req.http.X-Strata-Grace) {
        set req.grace = 1h;
    } elsif (std.healthy(req.backend_hint)) {
        set req.grace = 10s;
    }
    return (hash);
}

sub vcl_hash {
    hash_data(req.url);
    hash_data(req.http.Host);
    # Set by the load balancer, never by the client: http and https pages differ.
    hash_data(req.http.X-Forwarded-Proto);
    return (lookup);
}

sub vcl_backend_fetch {
    set bereq.backend = pool.backend();
    if (bereq.url == "/-/varnish-epoch") {
        # Made here, once per cache: the time it was first looked up (vcl_backend_error).
        return (error(200, "OK"));
    }
    if (bereq.url == "/-/varnish-ready") {
        # A check gives up after a second: answer before that (vcl_backend_error).
        set bereq.connect_timeout = 0.5s;
        set bereq.first_byte_timeout = 0.8s;
    }
}

sub vcl_backend_response {
    # Tags for other CDNs (strata.edge.headers): xkey reads its own header. Dropped
    # before the copy is stored, not unset again on every hit.
    unset beresp.http.Surrogate-Key;
    if (bereq.url == "/-/varnish-ready") {
        # Only Strata's answer counts. Anything else (the pool's "no app server is up",
        # an error page) means the app cannot be asked: then stay in rotation, to serve
        # from grace while the app servers are down.
        if (!beresp.http.X-Strata-Fence) {
            return (error(200, "OK"));
        }
        set beresp.uncacheable = true;
        set beresp.ttl = 0s;
        return (deliver);
    }
    # Pages with personal holes ask for ESI; shared or not, the holes are filled here.
    if (beresp.http.Surrogate-Control ~ "ESI/1.0") {
        unset beresp.http.Surrogate-Control;
        set beresp.do_esi = true;
    }
    # An error never replaces a copy. A failed background refresh keeps the old one; a
    # lookup's failed fetch is abandoned (delivering the error would evict the expired
    # copy), and vcl_synth looks again, accepting that copy. Only when there is none is
    # the app's own error page passed on, and nothing is kept.
    if (beresp.status >= 500) {
        if (bereq.is_bgfetch || (bereq.http.X-Cache == "MISS" && !bereq.http.X-Strata-Grace)) {
            return (abandon);
        }
        set beresp.uncacheable = true;
        set beresp.ttl = 0s;
        return (deliver);
    }
    # Store only what Django marked shared (public, s-maxage); everything else passes,
    # remembered as such for a short while (hit-for-miss) so requests are not queued.
    # Directives and field names are case-insensitive (RFC 9111 5.2, 4.1).
    if (beresp.http.Set-Cookie
        || beresp.http.Cache-Control ~ "(?i)(private|no-store|no-cache)"
        || beresp.http.Vary ~ "(^|,)\s*\*\s*(,|$)"
        || beresp.http.Cache-Control !~ "(?i)(public|s-maxage)") {
        set beresp.uncacheable = true;
        set beresp.ttl = 30s;
        return (deliver);
    }
    set beresp.grace = 1h;
    return (deliver);
}

sub vcl_hit {
    set req.http.X-Cache = "HIT";
}

sub vcl_miss {
    set req.http.X-Cache = "MISS";
}

sub vcl_pass {
    set req.http.X-Cache = "PASS";
}

sub vcl_deliver {
    if (req.url == "/-/varnish-epoch") {
        set req.http.X-Strata-Epoch = resp.http.X-Strata-Epoch;
        set req.url = "/-/varnish-ready";
        return (restart);
    }
    if (obj.uncacheable) {
        set resp.http.X-Cache = "PASS";
    } else {
        set resp.http.X-Cache = req.http.X-Cache;
    }
    # The copy keeps the X-Strata the app gave the request that fetched it (page-miss,
    # page-hit); a hit is another client's request, and says what happened to it.
    if (req.http.X-Cache == "HIT" && !obj.uncacheable) {
        if (obj.ttl < 0s) {
            set resp.http.X-Strata = "edge-stale";
        } else {
            set resp.http.X-Strata = "edge-hit";
        }
    }
    set resp.http.X-Cache-Hits = obj.hits;
    # Tags are for the accelerator only.
    unset resp.http.xkey;
    unset resp.http.Surrogate-Key;
    unset resp.http.Via;
    unset resp.http.X-Varnish;
}

sub vcl_backend_error {
    # This cache's birth certificate: kept until the cache is emptied (a restart, a ban
    # of everything). Looked up every second by the checks, so never evicted first.
    if (bereq.url == "/-/varnish-epoch") {
        set beresp.status = 200;
        set beresp.http.X-Strata-Epoch = std.real(time=now);
        set beresp.ttl = 3650d;
        set beresp.grace = 0s;
        set beresp.keep = 0s;
        synthetic("");
        return (deliver);
    }
    # The readiness check could not reach the app (see vcl_recv): ready.
    if (bereq.url == "/-/varnish-ready") {
        set beresp.status = 200;
        set beresp.reason = "OK";
        set beresp.http.Content-Type = "text/plain";
        set beresp.http.Cache-Control = "no-store";
        set beresp.http.X-Strata-Fence = "unknown";
        set beresp.uncacheable = true;
        set beresp.ttl = 0s;
        synthetic("ready: the app cannot be asked" + {"
"});
        return (deliver);
    }
}

sub vcl_synth {
    # A lookup whose fetch failed: look again, this time accepting an expired copy.
    if (resp.status == 503 && req.restarts == 0 && req.http.X-Cache == "MISS") {
        set req.http.X-Strata-Grace = "1";
        return (restart);
    }
    set resp.http.Cache-Control = "no-store";
}
