package io.pipetrace.redact;

import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Secrets recognized by their shape in any text, whatever setting they came from: name=value
 * options, JSON and dict pairs, URI user info, Authorization headers and bearer tokens. Each
 * form is a case of tests/test_secrets.py.
 *
 * <p>These regexes run over whole plan texts (up to plan_max_chars, several per step), so each
 * runs only when the text contains a substring every one of its matches contains.
 */
final class SecretRules {
  private static final String MASK = Matcher.quoteReplacement(Redactor.MASK);
  // Not a value masked already (quoted or not): redacting twice changes nothing.
  private static final String NOT_MASKED = "(?!(?:\\\\?[\"'])?\\*{9}\\(redacted\\))";

  // A name whose value is a secret: *password*, *secret*, *token*, ..., *_key / *.key / key,
  // and camel-case *Key (accountKey, privateKey, sessionKey, Azure's AccountKey and
  // SharedAccessKey). Case-insensitive except for the camel-case K.
  private static final String NAME =
      "(?:[\\w.\\-]*(?:password|passwd|pwd|secret|token|credential|sas|sig|signature)[\\w.\\-]*"
          + "|[\\w.\\-]*[_.\\-]key(?:[_.\\-][\\w.\\-]*)?|key|apikey|auth"
          + "|[\\w.\\-]*(?-i:[a-z0-9]Key)[\\w.\\-]*)";
  // A quote, maybe backslash-escaped (JSON inside a JSON string: {\"token\":\"...\"}).
  private static final String QUOTE = "(?:\\\\?[\"'])";

  // "name": "value" and 'name': 'value' (JSON, Python dicts): the value runs to its closing
  // quote, spaces included.
  private static final Pattern QUOTED_PAIR = Pattern.compile(
      "(?i)(\\\\?[\"'])(" + NAME + ")\\1(\\s*:\\s*)(\\\\?[\"'])" + NOT_MASKED + "(.*?)\\4");
  // name=value, name -> value, name: value (the ':' form needs a space or quote so that type
  // strings such as struct<key:string> are left alone). A value is quoted (plainly or with
  // escaped quotes) or runs to a separator or an escaped quote.
  private static final Pattern KEY_VALUE = Pattern.compile(
      "(?i)(?<![\\w.\\-])(" + NAME + QUOTE + "?)(\\s*=\\s*|\\s*->\\s*|:\\s+|" + QUOTE
          + "?:\\s*" + QUOTE + ")" + NOT_MASKED + "(\"[^\"]*\"|'[^']*'"
          + "|\\\\[\"'](?:(?!\\\\[\"']).)*\\\\[\"']"
          + "|(?:[^\\s,;&)\\]}\"'\\[\\\\]|\\\\(?![\"']))+)");
  // scheme://user:password@host
  private static final Pattern URI_USERINFO = Pattern.compile(
      "([a-zA-Z][a-zA-Z0-9+.\\-]*://)([^/@\\s:]+):([^/@\\s]+)@");
  // Authorization: <scheme> <credentials> (also Proxy-Authorization, and as key=value).
  private static final Pattern AUTH_HEADER = Pattern.compile(
      "(?i)(authori[sz]ation" + QUOTE + "?\\s*[:=]\\s*" + QUOTE + "?"
          + "(?:(?:bearer|basic|digest|negotiate|ntlm|token|sharedkey|sas)\\s+)?)" + NOT_MASKED
          + "([^\\s\"',;\\\\]+)");
  // A bearer token outside a header ("token rejected: Bearer eyJ..."). "Basic" alone is an
  // English word; only the header form above masks what follows it.
  private static final Pattern BEARER = Pattern.compile(
      "(?i)(?<![\\w])(bearer\\s+)" + NOT_MASKED + "([A-Za-z0-9\\-._~+/]+=*)");

  // Substrings one of which every NAME match contains (ASCII case-insensitive, like NAME).
  private static final String[] NAME_HINTS = {
      "passw", "pwd", "secret", "token", "credential", "sas", "sig", "key", "auth"};

  private SecretRules() {}

  /** {@code text} with every secret-shaped value replaced by the mask. */
  static String apply(String text) {
    String out = text;
    if (out.contains("://")) {
      out = URI_USERINFO.matcher(out).replaceAll("$1$2:" + MASK + "@");
    }
    String lower = out.toLowerCase(Locale.ROOT);
    if (lower.contains("authori")) {
      out = AUTH_HEADER.matcher(out).replaceAll("$1" + MASK);
    }
    if (lower.contains("bearer")) {
      out = BEARER.matcher(out).replaceAll("$1" + MASK);
    }
    if (mayNameSecret(lower)) {
      if (out.indexOf('"') >= 0 || out.indexOf('\'') >= 0) {
        out = QUOTED_PAIR.matcher(out).replaceAll("$1$2$1$3$4" + MASK + "$4");
      }
      out = KEY_VALUE.matcher(out).replaceAll("$1$2" + MASK);
    }
    return out;
  }

  private static boolean mayNameSecret(String lower) {
    for (String hint : NAME_HINTS) {
      if (lower.contains(hint)) {
        return true;
      }
    }
    return false;
  }
}
