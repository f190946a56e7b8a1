//! The user directory (`conf/directory`, the `directory` section): users
//! found by id and domain with their params and variables merged as
//! FreeSWITCH merges them (domain, then group, then user, the later
//! winning); the `user_data` and `user_exists` api commands; and the
//! dial string the `user/` endpoint resolves to.

use crate::core::{Core, GlobalVars};
use crate::xml::Element;
use std::sync::Arc;

/// A user as the directory describes it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub domain: String,
    /// `<param>`s, domain's first, the user's last.
    pub params: Vec<(String, String)>,
    /// `<variable>`s, in the same order.
    pub variables: Vec<(String, String)>,
    pub attrs: Vec<(String, String)>,
}

impl User {
    fn last<'a>(list: &'a [(String, String)], name: &str) -> Option<&'a str> {
        list.iter()
            .rev()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// A param (the most specific definition).
    pub fn param(&self, name: &str) -> Option<&str> {
        Self::last(&self.params, name)
    }

    /// A variable (the most specific definition).
    pub fn variable(&self, name: &str) -> Option<&str> {
        Self::last(&self.variables, name)
    }
}

fn pairs(e: Option<&Element>, tag: &str) -> Vec<(String, String)> {
    e.map(|e| {
        e.children_named(tag)
            .filter_map(|p| Some((p.attr("name")?.to_string(), p.attr("value")?.to_string())))
            .collect()
    })
    .unwrap_or_default()
}

/// Finds `id` in `domain` in a `directory` section element.
pub fn find_user(directory: &Element, id: &str, domain: &str) -> Option<User> {
    let d = directory.children_named("domain").find(|d| {
        d.attr("name")
            .is_some_and(|n| n.eq_ignore_ascii_case(domain))
    })?;
    let mut params = pairs(d.child("params"), "param");
    let mut variables = pairs(d.child("variables"), "variable");
    let matches = |u: &Element| u.attr("id") == Some(id) || u.attr("number-alias") == Some(id);
    // Users sit under <groups><group><users> or directly under <users>.
    let mut found: Option<(&Element, Option<&Element>)> = None;
    if let Some(users) = d.child("users") {
        found = users
            .children_named("user")
            .find(|u| matches(u))
            .map(|u| (u, None));
    }
    if found.is_none() {
        if let Some(groups) = d.child("groups") {
            'g: for g in groups.children_named("group") {
                if let Some(users) = g.child("users") {
                    for u in users.children_named("user") {
                        if matches(u) {
                            found = Some((u, Some(g)));
                            break 'g;
                        }
                    }
                }
            }
        }
    }
    let (u, group) = found?;
    if let Some(g) = group {
        params.extend(pairs(g.child("params"), "param"));
        variables.extend(pairs(g.child("variables"), "variable"));
    }
    params.extend(pairs(u.child("params"), "param"));
    variables.extend(pairs(u.child("variables"), "variable"));
    Some(User {
        id: u.attr("id").unwrap_or(id).to_string(),
        domain: d.attr("name").unwrap_or(domain).to_string(),
        params,
        variables,
        attrs: u.attrs.clone(),
    })
}

/// Looks a user up in the current configuration; `user` may be
/// `id@domain` or `id` (the `domain` global then).
pub fn lookup(core: &Arc<Core>, user: &str) -> Option<User> {
    let (id, domain) = match user.split_once('@') {
        Some((i, d)) => (i.to_string(), d.to_string()),
        None => (user.to_string(), core.global("domain")?),
    };
    let doc = core.config.document()?;
    let dir = doc.section("directory")?;
    find_user(dir, &id, &domain)
}

/// `user_data <user>@<domain> [var|param|attr] <name>`: the value, or
/// nothing — also for bad arguments, as FreeSWITCH answers them.
pub fn user_data(core: &Arc<Core>, args: &str) -> String {
    let w: Vec<&str> = args.split_whitespace().collect();
    let (who, kind, name) = match w.as_slice() {
        [who, kind, name, ..] => (*who, *kind, *name),
        _ => return String::new(),
    };
    let Some(u) = lookup(core, who) else {
        return String::new();
    };
    let v = match kind {
        "var" => u.variable(name),
        "param" => u.param(name),
        "attr" => User::last(&u.attrs, name),
        _ => u.param(name),
    };
    v.unwrap_or("").to_string()
}

/// `user_exists id <user> <domain>`: `true` or `false` (bad arguments
/// too).
pub fn user_exists(core: &Arc<Core>, args: &str) -> String {
    let w: Vec<&str> = args.split_whitespace().collect();
    let found = match w.as_slice() {
        [_, user, domain, ..] => lookup(core, &format!("{user}@{domain}")).is_some(),
        _ => false,
    };
    found.to_string()
}

/// `find_user_xml <key> <user> <domain>`: the user's element with the
/// domain's and group's params and variables merged in (the later
/// winning), as FreeSWITCH's `switch_xml_locate_user_merged` gives it;
/// `-ERR can't find user` otherwise. Endpoints read a caller's variables
/// from it after digest authentication.
pub fn find_user_xml(core: &Arc<Core>, args: &str) -> String {
    let w: Vec<&str> = args.split_whitespace().collect();
    let [_, user, domain] = w.as_slice() else {
        return "-ERR bad args\n".into();
    };
    let Some(u) = lookup(core, &format!("{user}@{domain}")) else {
        return "-ERR can't find user\n".into();
    };
    u.to_xml()
}

/// `xml_locate <section> <tag> <tag_attr_name> <tag_attr_val>`: the first
/// child of the document's section with that tag and attribute value (any
/// case), as written in the configuration; `can't find anything`
/// otherwise. mod_sofia builds the `domain=` nodes of acl.conf from the
/// users of `xml_locate directory domain name <domain>`.
pub fn xml_locate(core: &Arc<Core>, args: &str) -> String {
    let w: Vec<&str> = args.split_whitespace().collect();
    let [section, tag, attr, value] = w.as_slice() else {
        return "-ERR bad args\n".into();
    };
    let Some(doc) = core.config.document() else {
        return "can't find anything\n".into();
    };
    let found = doc.section(section).and_then(|s| {
        s.children_named(tag)
            .find(|e| e.attr(attr).is_some_and(|v| v.eq_ignore_ascii_case(value)))
    });
    match found.and_then(|e| doc.text.get(e.span.0..e.span.1)) {
        Some(text) => format!("{text}\n"),
        None => "can't find anything\n".into(),
    }
}

impl User {
    /// The merged user as XML: each param and variable once, the most
    /// specific definition in the position of the first.
    pub fn to_xml(&self) -> String {
        use quick_xml::escape::escape;
        fn merged(list: &[(String, String)]) -> Vec<(&str, &str)> {
            let mut out: Vec<(&str, &str)> = Vec::new();
            for (k, v) in list {
                match out.iter_mut().find(|(n, _)| n.eq_ignore_ascii_case(k)) {
                    Some(e) => e.1 = v,
                    None => out.push((k, v)),
                }
            }
            out
        }
        let mut x = String::from("<user");
        let mut attrs = self.attrs.clone();
        if !attrs.iter().any(|(k, _)| k == "id") {
            attrs.insert(0, ("id".into(), self.id.clone()));
        }
        for (k, v) in &attrs {
            x.push_str(&format!(
                " {}=\"{}\"",
                escape(k.as_str()),
                escape(v.as_str())
            ));
        }
        x.push_str(">\n");
        for (tag, item, list) in [
            ("params", "param", &self.params),
            ("variables", "variable", &self.variables),
        ] {
            x.push_str(&format!("  <{tag}>\n"));
            for (k, v) in merged(list) {
                x.push_str(&format!(
                    "    <{item} name=\"{}\" value=\"{}\"/>\n",
                    escape(k),
                    escape(v)
                ));
            }
            x.push_str(&format!("  </{tag}>\n"));
        }
        x.push_str("</user>\n");
        x
    }
}

/// Where `user/<id>[@<domain>]` goes: the user's `dial-string` param with
/// `${dialed_user}` and `${dialed_domain}` expanded (FreeSWITCH's default
/// reaches the registered contact through `${sofia_contact(…)}`), and the
/// user's variables for the new leg.
pub fn dialstring(core: &Arc<Core>, data: &str) -> Option<(String, Vec<(String, String)>)> {
    let u = lookup(core, data)?;
    let template = u.param("dial-string").unwrap_or(
        "{presence_id=${dialed_user}@${dialed_domain}}${sofia_contact(${dialed_user}@${dialed_domain})}",
    );
    struct Dialed<'a> {
        core: &'a Arc<Core>,
        user: &'a User,
    }
    impl crate::expand::Vars for Dialed<'_> {
        fn var(&self, name: &str) -> Option<String> {
            match name {
                "dialed_user" => Some(self.user.id.clone()),
                "dialed_domain" => Some(self.user.domain.clone()),
                _ => self
                    .user
                    .variable(name)
                    .map(str::to_string)
                    .or_else(|| self.core.global(name)),
            }
        }
        fn global(&self, name: &str) -> Option<String> {
            self.core.global(name)
        }
        fn api(&self, cmd: &str, args: &str) -> Option<String> {
            GlobalVars(self.core).api(cmd, args)
        }
    }
    let ds = crate::expand::expand(template, &Dialed { core, user: &u });
    let mut vars = u.variables.clone();
    vars.push(("dialed_user".into(), u.id.clone()));
    vars.push(("dialed_domain".into(), u.domain.clone()));
    Some((ds, vars))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> Element {
        let xml = r#"<section name="directory"><domain name="example.com">
            <params><param name="dial-string" value="D"/><param name="password" value="domainpw"/></params>
            <variables><variable name="user_context" value="public"/></variables>
            <groups><group name="default"><users>
              <user id="1000"><params><param name="password" value="1234"/></params>
                <variables><variable name="user_context" value="default"/></variables></user>
            </users></group></groups>
            <users><user id="2000" number-alias="200"/></users>
          </domain></section>"#;
        crate::xml::parse(xml, std::path::Path::new("test.xml")).unwrap()
    }

    #[test]
    fn the_users_own_settings_win_over_the_domains() {
        let u = find_user(&dir(), "1000", "example.com").unwrap();
        assert_eq!(u.param("password"), Some("1234"));
        assert_eq!(u.param("dial-string"), Some("D"));
        assert_eq!(u.variable("user_context"), Some("default"));
        assert!(find_user(&dir(), "1000", "other.com").is_none());
        assert!(find_user(&dir(), "1001", "example.com").is_none());
    }

    #[test]
    fn users_outside_groups_and_aliases_are_found() {
        let u = find_user(&dir(), "200", "EXAMPLE.com").unwrap();
        assert_eq!(u.id, "2000");
        assert_eq!(u.param("password"), Some("domainpw"));
    }

    #[test]
    fn the_merged_user_is_written_as_xml_with_each_setting_once() {
        let u = find_user(&dir(), "1000", "example.com").unwrap();
        let x = u.to_xml();
        assert!(x.starts_with("<user id=\"1000\">"), "{x}");
        assert_eq!(x.matches("name=\"password\"").count(), 1, "{x}");
        assert!(
            x.contains("<param name=\"password\" value=\"1234\"/>"),
            "{x}"
        );
        assert!(
            x.contains("<variable name=\"user_context\" value=\"default\"/>"),
            "{x}"
        );
        assert!(
            x.contains("<param name=\"dial-string\" value=\"D\"/>"),
            "{x}"
        );
    }
}
