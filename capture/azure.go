package capture

import "github.com/llmaudittrail/llmaudittrail/llmapi"

// azureProvider is Azure OpenAI: OpenAI's format (the deployment, in
// /openai/deployments/NAME/..., is the model of a request that names none:
// see openAI.pathModel) on a host per resource, RESOURCE.openai.azure.com,
// with the key in Api-Key. It has no default upstream: an upstream whose
// name begins with azure is one (--upstream azure-east=https://RESOURCE.openai.azure.com).
var azureProvider = llmapi.Provider{Name: "azure", System: "azure.ai.openai", Hosts: []string{"*.openai.azure.com"},
	UpstreamPrefix: true, Credentials: []string{"Api-Key"}, Format: openAI{}}
