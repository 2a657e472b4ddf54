// Cognito over fetch: user pool sign-in with USER_PASSWORD_AUTH (InitiateAuth, then
// RespondToAuthChallenge for NEW_PASSWORD_REQUIRED) and identity pool credentials
// (GetId, GetCredentialsForIdentity). These calls are unsigned JSON 1.1 requests.

export class CognitoError extends Error {
  constructor(type, message, status) {
    super(message || type);
    this.type = type;
    this.status = status;
  }
}

async function call(endpoint, target, body) {
  const response = await fetch(endpoint, {
    method: "POST",
    headers: { "Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": target },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  let data = {};
  try {
    data = text ? JSON.parse(text) : {};
  } catch {
    throw new CognitoError("InvalidResponse", `${target}: not JSON (HTTP ${response.status})`, response.status);
  }
  if (!response.ok) {
    const type = String(data.__type || data.code || "Error").split("#").pop();
    throw new CognitoError(type, data.message || data.Message || type, response.status);
  }
  return data;
}

export class UserPool {
  /** `endpoint`: the user pool service URL (https://cognito-idp.<region>.amazonaws.com/ on AWS). */
  constructor({ endpoint, clientId }) {
    this.endpoint = endpoint;
    this.clientId = clientId;
  }

  /** {tokens} when signed in, {challenge: "NEW_PASSWORD_REQUIRED", session} when the
   * temporary password must be replaced. Throws CognitoError (NotAuthorizedException
   * for a wrong password). */
  async signIn(username, password) {
    const out = await call(this.endpoint, "AWSCognitoIdentityProviderService.InitiateAuth", {
      AuthFlow: "USER_PASSWORD_AUTH",
      ClientId: this.clientId,
      AuthParameters: { USERNAME: username, PASSWORD: password },
    });
    return this.#result(out);
  }

  /** Fresh tokens from the refresh token (REFRESH_TOKEN_AUTH). */
  async refresh(refreshToken) {
    const out = await call(this.endpoint, "AWSCognitoIdentityProviderService.InitiateAuth", {
      AuthFlow: "REFRESH_TOKEN_AUTH",
      ClientId: this.clientId,
      AuthParameters: { REFRESH_TOKEN: refreshToken },
    });
    return this.#result(out);
  }

  async setNewPassword(username, newPassword, session) {
    const out = await call(this.endpoint, "AWSCognitoIdentityProviderService.RespondToAuthChallenge", {
      ChallengeName: "NEW_PASSWORD_REQUIRED",
      ClientId: this.clientId,
      Session: session,
      ChallengeResponses: { USERNAME: username, NEW_PASSWORD: newPassword },
    });
    return this.#result(out);
  }

  #result(out) {
    if (out.AuthenticationResult) {
      return { tokens: out.AuthenticationResult };
    }
    if (out.ChallengeName) {
      return { challenge: out.ChallengeName, session: out.Session };
    }
    throw new CognitoError("InvalidResponse", "Cognito answered neither tokens nor a challenge");
  }
}

export class IdentityPool {
  /** `endpoint`: the identity service URL (https://cognito-identity.<region>.amazonaws.com/ on AWS). */
  constructor({ endpoint, identityPoolId, region, userPoolId }) {
    this.endpoint = endpoint;
    this.identityPoolId = identityPoolId;
    this.provider = `cognito-idp.${region}.amazonaws.com/${userPoolId}`;
  }

  /** Temporary AWS credentials of the signed-in user's identity. */
  async credentials(idToken) {
    const logins = { [this.provider]: idToken };
    const { IdentityId } = await call(this.endpoint, "AWSCognitoIdentityService.GetId", {
      IdentityPoolId: this.identityPoolId,
      Logins: logins,
    });
    const { Credentials } = await call(this.endpoint, "AWSCognitoIdentityService.GetCredentialsForIdentity", {
      IdentityId,
      Logins: logins,
    });
    return {
      identityId: IdentityId,
      accessKeyId: Credentials.AccessKeyId,
      secretAccessKey: Credentials.SecretKey,
      sessionToken: Credentials.SessionToken,
      // Seconds since the epoch, as Cognito answers.
      expiration: Number(Credentials.Expiration) * 1000,
    };
  }
}
