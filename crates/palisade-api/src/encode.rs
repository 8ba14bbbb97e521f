//! One reply tree (a JSON object), two encodings. XML follows the service: a root
//! `<ActionResponse>`, and a list `{"Items":{"Item":[..]}}` becomes `<Items><Item/>..</Items>`.

use serde_json::Value;

pub fn to_json(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "{}".into())
}

pub fn to_xml(root: &str, v: &Value) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
    element(&mut out, root, v);
    out
}

fn element(out: &mut String, name: &str, v: &Value) {
    match v {
        Value::Array(items) => {
            // An array under key K repeats <K> once per item.
            for item in items {
                element(out, name, item);
            }
        }
        Value::Object(map) => {
            out.push('<');
            out.push_str(name);
            out.push('>');
            for (k, child) in map {
                element(out, k, child);
            }
            out.push_str("</");
            out.push_str(name);
            out.push('>');
        }
        Value::Null => {
            out.push('<');
            out.push_str(name);
            out.push_str("/>");
        }
        other => {
            out.push('<');
            out.push_str(name);
            out.push('>');
            let text = match other {
                Value::String(s) => s.clone(),
                x => x.to_string(),
            };
            escape_into(out, &text);
            out.push_str("</");
            out.push_str(name);
            out.push('>');
        }
    }
}

fn escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 cannot carry most control characters at all; drop them.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {}
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn double_wrapped_lists() {
        let v = json!({"RequestId": "R", "Permissions": {"Permission": [{"Priority": 1}, {"Priority": 2}]}, "Empty": {"Tag": []}});
        assert_eq!(
            to_xml("DescribeSecurityGroupAttributeResponse", &v),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><DescribeSecurityGroupAttributeResponse><RequestId>R</RequestId><Permissions><Permission><Priority>1</Priority></Permission><Permission><Priority>2</Priority></Permission></Permissions><Empty></Empty></DescribeSecurityGroupAttributeResponse>"
        );
    }

    #[test]
    fn escapes() {
        let v = json!({"Description": "a<b & \"c\""});
        assert!(to_xml("R", &v).contains("a&lt;b &amp; &quot;c&quot;"));
    }
}
