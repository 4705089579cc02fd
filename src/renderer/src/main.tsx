import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { App } from "./App.js";
import { LinkApiProvider } from "./link-api.js";

const root = document.getElementById("root");
if (root === null) throw new Error("index.html has no #root element");
if (window.piperLink === undefined) {
  root.textContent = "Piper Link's window must be opened from the Piper Link app.";
} else {
  createRoot(root).render(
    <StrictMode>
      <LinkApiProvider api={window.piperLink}>
        <App />
      </LinkApiProvider>
    </StrictMode>,
  );
}
