package config

import (
	"net/url"
	"strings"
)

// RedactURL hides credentials in a URL or a comma-separated list of URLs
// (NATS_URL, DATABASE_URL): the user-info part keeps its user name and loses
// its password, and a password query parameter is masked. A URL that does not
// parse but has user info is masked from the scheme to the last '@', so a
// password with '/', '#' or '?' in it is never printed either.
func RedactURL(list string) string {
	parts := strings.Split(list, ",")
	for i, p := range parts {
		p = strings.TrimSpace(p)
		u, err := url.Parse(p)
		switch {
		case err != nil && strings.Contains(p, "@"):
			parts[i] = maskUserInfo(p)
		case err != nil:
			parts[i] = p
		default:
			if u.User != nil {
				if _, has := u.User.Password(); has {
					u.User = url.UserPassword(u.User.Username(), "xxx")
				} else if strings.Contains(p, "@") && u.User.Username() != "" && !strings.Contains(u.Scheme, "postgres") {
					// nats://token@host: the user part is a token.
					u.User = url.User("xxx")
				}
			}
			if q := u.Query(); q.Has("password") {
				q.Set("password", "xxx")
				u.RawQuery = q.Encode()
			}
			parts[i] = u.String()
		}
	}
	return strings.Join(parts, ",")
}

func maskUserInfo(u string) string {
	scheme, rest, ok := strings.Cut(u, "://")
	if !ok {
		scheme, rest = "", u
	} else {
		scheme += "://"
	}
	at := strings.LastIndexByte(rest, '@')
	if at < 0 {
		return "***"
	}
	return scheme + "***" + rest[at:]
}
