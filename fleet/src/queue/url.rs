//! A database URL as it may be shown: in reviewer names, audit records and
//! error messages, where a password must never appear.

/// Whether `text` is a database URL (`postgres://` or `postgresql://`),
/// as opposed to a queue file.
pub fn is_database_url(text: &str) -> bool {
    text.starts_with("postgres://") || text.starts_with("postgresql://")
}

/// `url` without its password: the one in the user information
/// (`user:secret@host`) and any query parameter whose name says password
/// (`?password=secret`). When in doubt, more is removed, never less.
pub fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<a database url>".into();
    };
    let (location, query) = match rest.split_once('?') {
        Some((location, query)) => (location, Some(query)),
        None => (rest, None),
    };
    let location = match location.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{user}@{host}")
        }
        None => location.to_string(),
    };
    let query: Vec<&str> = query
        .map(|q| {
            q.split('&')
                .filter(|param| {
                    let name = param.split('=').next().unwrap_or_default();
                    !name.to_ascii_lowercase().contains("password")
                })
                .collect()
        })
        .unwrap_or_default();
    if query.is_empty() {
        format!("{scheme}://{location}")
    } else {
        format!("{scheme}://{location}?{}", query.join("&"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_removed_and_everything_else_kept() {
        for (url, shown) in [
            (
                "postgresql://carol:s3cret@db.internal:5432/mandate",
                "postgresql://carol@db.internal:5432/mandate",
            ),
            (
                "postgres://host1@%2Frun%2Fpostgresql/mandate",
                "postgres://host1@%2Frun%2Fpostgresql/mandate",
            ),
            (
                "postgresql://db/mandate?user=x&password=s3cret&sslmode=require",
                "postgresql://db/mandate?user=x&sslmode=require",
            ),
            (
                "postgresql://carol:p@ss@db/mandate?PASSWORD=s3cret",
                "postgresql://carol@db/mandate",
            ),
            ("host=db password=s3cret", "<a database url>"),
        ] {
            let got = without_password(url);
            assert_eq!(got, shown);
            assert!(!got.contains("s3cret") && !got.contains("ss@"), "{got}");
        }
    }

    #[test]
    fn only_postgres_urls_are_database_urls() {
        assert!(is_database_url("postgres://h/db"));
        assert!(is_database_url("postgresql://h/db"));
        assert!(!is_database_url("approvals.sqlite"));
        assert!(!is_database_url("./postgres://x"));
    }
}
