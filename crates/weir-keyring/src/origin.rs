//! A server URL reduced to the key its token is stored under.

use std::fmt;

use url::Url;

use crate::{Error, Result};

/// The longest server URL accepted, in bytes.
const MAX_URL_BYTES: usize = 2048;

/// A weir server's origin, `scheme://host:port`: the key a token is stored
/// under (with service [`SERVICE`](crate::SERVICE)).
///
/// Parsing follows the WHATWG URL standard (the `url` crate, which HTTP
/// clients such as `reqwest` use too), so the origin names the server the
/// client will connect to: scheme and host in lower case, internationalised
/// hosts in punycode, IP addresses in canonical form, and the port always
/// spelled out (443 for https, 80 for http). A path is allowed and ignored:
/// a token belongs to an origin, as a browser's credentials do.
///
/// # Security
///
/// A URL with user info (`https://alice:pw@host`), a query or a fragment is
/// refused rather than reduced, since it may carry a credential that the
/// caller did not mean to hand over; the refusal does not echo the URL.
///
/// ```
/// use weir_keyring::ServerOrigin;
///
/// let origin = ServerOrigin::parse("HTTPS://Weir.Example.com/").unwrap();
/// assert_eq!(origin.as_str(), "https://weir.example.com:443");
/// assert!(ServerOrigin::parse("https://alice:pw@weir.example.com").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServerOrigin(String);

impl ServerOrigin {
    /// Validates `url` and reduces it to its origin.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidServerUrl`] if `url` is not an absolute `http` or
    /// `https` URL with a host, or if it has user info, a query or a
    /// fragment.
    pub fn parse(url: &str) -> Result<Self> {
        let invalid = |reason| Err(Error::InvalidServerUrl { reason });
        if url.trim().is_empty() {
            return invalid("it is empty");
        }
        if url.len() > MAX_URL_BYTES {
            return invalid("it is longer than 2048 bytes");
        }
        let Ok(parsed) = Url::parse(url) else {
            return invalid("it is not an absolute URL with a host");
        };
        if !matches!(parsed.scheme(), "http" | "https") {
            return invalid("the scheme must be http or https");
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return invalid("it contains user info (name:password@); never put credentials in it");
        }
        if parsed.query().is_some() {
            return invalid("it has a query (?...)");
        }
        if parsed.fragment().is_some() {
            return invalid("it has a fragment (#...)");
        }
        let (Some(host), Some(port)) = (parsed.host_str(), parsed.port_or_known_default()) else {
            return invalid("it has no host");
        };
        if host.is_empty() {
            return invalid("it has no host");
        }
        Ok(Self(format!("{}://{host}:{port}", parsed.scheme())))
    }

    /// The origin, `scheme://host:port`, without a trailing slash.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ServerOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ServerOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ServerOrigin").field(&self.0).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(url: &str) -> String {
        ServerOrigin::parse(url)
            .unwrap_or_else(|e| panic!("{url}: {e}"))
            .as_str()
            .to_owned()
    }

    fn refused(url: &str) -> String {
        match ServerOrigin::parse(url) {
            Ok(o) => panic!("{url} was accepted as {o}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn spellings_of_one_server_share_one_origin() {
        for url in [
            "https://weir.example.com",
            "https://weir.example.com/",
            "https://weir.example.com:443",
            "https://weir.example.com:443/",
            "HTTPS://WEIR.Example.COM",
            "https://weir.example.com/api/v1/",
            "  https://weir.example.com  ",
        ] {
            assert_eq!(origin(url), "https://weir.example.com:443", "{url}");
        }
    }

    #[test]
    fn ports_and_schemes_distinguish_servers() {
        assert_eq!(
            origin("http://weir.example.com"),
            "http://weir.example.com:80"
        );
        assert_eq!(
            origin("https://weir.example.com:8443"),
            "https://weir.example.com:8443"
        );
        assert_eq!(origin("http://127.0.0.1:8080/"), "http://127.0.0.1:8080");
        assert_eq!(origin("http://localhost:8080"), "http://localhost:8080");
        assert_eq!(origin("http://[::1]:8080"), "http://[::1]:8080");
    }

    #[test]
    fn hosts_are_canonicalised_like_an_http_client_would() {
        assert_eq!(
            origin("https://bücher.example"),
            "https://xn--bcher-kva.example:443"
        );
        assert_eq!(origin("http://0x7f.1:8080"), "http://127.0.0.1:8080");
        assert_eq!(origin("http://[0:0::1]:8080"), "http://[::1]:8080");
    }

    #[test]
    fn user_info_is_refused_and_not_echoed() {
        for url in [
            "https://alice:s3cret-pw@weir.example.com",
            "https://alice@weir.example.com",
            "https://:s3cret-pw@weir.example.com",
        ] {
            let message = refused(url);
            assert!(message.contains("user info"), "{message}");
            assert!(!message.contains("s3cret-pw"), "{message}");
            assert!(!message.contains("alice"), "{message}");
        }
    }

    #[test]
    fn query_is_refused_and_not_echoed() {
        for url in [
            "https://weir.example.com/?token=s3cret",
            "https://weir.example.com?",
        ] {
            let message = refused(url);
            assert!(message.contains("query"), "{message}");
            assert!(!message.contains("s3cret"), "{message}");
        }
    }

    #[test]
    fn fragment_is_refused() {
        for url in [
            "https://weir.example.com/#s3cret",
            "https://weir.example.com#",
        ] {
            let message = refused(url);
            assert!(message.contains("fragment"), "{message}");
            assert!(!message.contains("s3cret"), "{message}");
        }
    }

    #[test]
    fn other_schemes_and_non_urls_are_refused() {
        for url in [
            "",
            "   ",
            "weir.example.com",
            "/api/v1",
            "ftp://weir.example.com",
            "file:///etc/passwd",
            "unix:/run/weir.sock",
            "http://",
            "https://:443",
            "https://exa mple.com",
        ] {
            let message = refused(url);
            assert!(
                message.starts_with("invalid server URL"),
                "{url}: {message}"
            );
        }
    }

    #[test]
    fn overlong_urls_are_refused() {
        let url = format!("https://{}.example.com", "a".repeat(MAX_URL_BYTES));
        assert!(refused(&url).contains("longer than"));
    }
}
