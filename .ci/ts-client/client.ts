// What an SPA writes with the generated types and openapi-fetch (default options):
// it must compile under `tsc --strict`. Optional request fields with a default
// (refresh_in_cookie at login, a new note's body) may be left out.
import createClient from "openapi-fetch";
import type { paths } from "./generated/api.d.ts";

const api = createClient<paths>({ baseUrl: "http://127.0.0.1:5000" });

export async function firstSteps(): Promise<string> {
  const login = await api.POST("/api/v1/auth/login", {
    body: { login: "ada@example.com", password: "Enigma-rotor-1943" },
  });
  if (login.error) return login.error.message;
  const headers = { Authorization: `Bearer ${login.data.access_token}` };
  const subject = await api.POST("/api/v1/subjects/", {
    headers,
    body: { name: "Linear algebra" },
  });
  if (subject.error) return subject.error.message;
  const note = await api.POST("/api/v1/subjects/{subject_id}/notes", {
    headers,
    params: { path: { subject_id: subject.data.id } },
    body: { title: "Eigenvalues" },
  });
  if (note.error) return note.error.message;
  const list = await api.GET("/api/v1/subjects/", {
    headers,
    params: { query: { page_size: 20 } },
  });
  return list.data ? `${list.data.length} subject(s), note ${note.data.id}` : "none";
}
